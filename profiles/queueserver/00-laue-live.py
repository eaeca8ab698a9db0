# bluesky-queueserver startup of the laue-live session:
#   start-re-manager --startup-dir profiles/queueserver
# The worker has no display: no live views (follow the stream with `laue-live watch` or a
# session in LAUE_LIVE_MODE=service instead); the analysis runs in the worker (LAUE_LIVE_MODE=local,
# default) or in `laue-live serve` (LAUE_LIVE_MODE=service). See profiles/laue_live_session.py.
import os as _os
import sys as _sys
from pathlib import Path as _Path

_here = _Path(globals().get("__file__") or _os.environ.get("LAUE_LIVE_PROFILES", "profiles/queueserver"))
_sys.path.append(str(_here.resolve().parent.parent if _here.suffix == ".py" else _here.resolve().parent))
_os.environ.setdefault("LAUE_LIVE_VIEWS", "0")
from laue_live_session import make_session as _make_session  # noqa: E402

globals().update(_make_session())
