"""Live views of the analysis: raster quality and grain maps, the latest frame with its spots, a ticker.

The matplotlib views are document callbacks ``view(name, doc)`` that follow bluesky's live-plot
conventions (subscribe them, they draw as documents arrive); feed them in-process from the live
callback's sinks, or from the service's 0MQ stream with :func:`follow_stream`.
"""

from laue_live._run import frame_index
from laue_live.views._base import LiveView
from laue_live.views._follow import follow_stream
from laue_live.views._frame import LiveSpotFrame
from laue_live.views._grains import GRAIN_VIEW_VALUES, LiveGrainMap, draw_ipf_key, save_orientation_map
from laue_live.views._map import LiveSpotMap
from laue_live.views._text import FrameTicker

__all__ = ["LiveView", "LiveSpotMap", "LiveSpotFrame", "LiveGrainMap", "GRAIN_VIEW_VALUES", "draw_ipf_key",
           "save_orientation_map", "FrameTicker", "follow_stream", "frame_index"]
