"""Live views of the analysis: quality and grain maps, the latest frame with its spots, a ticker, a table.

The matplotlib views are document callbacks ``view(name, doc)`` that follow bluesky's live-plot
conventions (subscribe them, they draw as documents arrive); feed them in-process from the live
callback's sinks, or from the service's 0MQ stream with :func:`follow_stream`.
"""

from laue_live._run import frame_index
from laue_live.views._base import LiveView
from laue_live.views._draw import SPOT_STYLE, draw_frame, spot_counts
from laue_live.views._follow import follow_stream
from laue_live.views._frame import LiveSpotFrame
from laue_live.views._grains import GRAIN_VIEW_VALUES, NO_GRAIN_RGB, LiveGrainMap
from laue_live.views._map import LiveSpotMap
from laue_live.views._text import FrameTicker, LiveSpotTable

__all__ = ["LiveView", "LiveSpotMap", "LiveSpotFrame", "FrameTicker", "follow_stream", "frame_index",
           "LiveSpotTable", "draw_frame", "spot_counts", "SPOT_STYLE", "LiveGrainMap", "GRAIN_VIEW_VALUES",
           "NO_GRAIN_RGB"]
