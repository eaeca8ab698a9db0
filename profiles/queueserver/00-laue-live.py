# bluesky-queueserver startup of the laue-live session:
#   start-re-manager --startup-dir profiles/queueserver
# The worker has no display: no live views (follow the stream with `laue-live watch` or a
# session in LAUE_LIVE_MODE=service instead); the analysis runs in the worker (LAUE_LIVE_MODE=local,
# default) or in `laue-live serve` (LAUE_LIVE_MODE=service). See profiles/laue_live_session.py.
# The session module is loaded from its file: putting profiles/ on sys.path would let the folder
# profiles/laue_live/ shadow the installed package `laue_live` (an empty namespace package).
import importlib.util as _ilu
import os as _os
import sys as _sys
from pathlib import Path as _Path

_here = _Path(globals().get("__file__") or _os.environ.get("LAUE_LIVE_PROFILES", "profiles/queueserver"))
_profiles = _here.resolve().parent.parent if _here.suffix == ".py" else _here.resolve().parent
_spec = _ilu.spec_from_file_location("laue_live_session", _profiles / "laue_live_session.py")
_module = _ilu.module_from_spec(_spec)
_sys.modules["laue_live_session"] = _module
_spec.loader.exec_module(_module)
_os.environ.setdefault("LAUE_LIVE_VIEWS", "0")

globals().update(_module.make_session())
