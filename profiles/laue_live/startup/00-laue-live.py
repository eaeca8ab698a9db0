# IPython startup of the laue-live beamline session: `ipython --profile-dir=profiles/laue_live`.
# Makes RE, laue_detector, stage_x, stage_y, raster_scan, the live analysis and the live views;
# configuration by environment variables, see profiles/laue_live_session.py and docs/stream.md.
# The session module is loaded from its file: putting profiles/ on sys.path would let the folder
# profiles/laue_live/ shadow the installed package `laue_live` (an empty namespace package).
import importlib.util as _ilu
import sys as _sys
from pathlib import Path as _Path

_path = _Path(__file__).resolve().parents[2] / "laue_live_session.py"
_spec = _ilu.spec_from_file_location("laue_live_session", _path)
_module = _ilu.module_from_spec(_spec)
_sys.modules["laue_live_session"] = _module
_spec.loader.exec_module(_module)

globals().update(_module.make_session())
print(f"laue-live session: {laue_session}")  # noqa: F821 - defined by make_session
print("try:  RE(raster_scan([laue_detector], stage_x, 0, 20, 5, stage_y, 0, 20, 4))")
