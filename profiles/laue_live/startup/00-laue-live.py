# IPython startup of the laue-live beamline session: `ipython --profile-dir=profiles/laue_live`.
# Makes RE, laue_detector, stage_x, stage_y, raster_scan, the live analysis and the live views;
# configuration by environment variables, see profiles/laue_live_session.py and docs/stream.md.
import sys as _sys
from pathlib import Path as _Path

_sys.path.append(str(_Path(__file__).resolve().parents[2]))  # profiles/
from laue_live_session import make_session as _make_session  # noqa: E402

globals().update(_make_session())
print(f"laue-live session: {laue_session}")  # noqa: F821 - defined by make_session
print("try:  RE(raster_scan([laue_detector], stage_x, 0, 20, 5, stage_y, 0, 20, 4))")
