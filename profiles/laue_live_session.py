"""Build a laue-live beamline session: RunEngine, devices, live analysis (or the service), live views.

Used by the IPython profile (``ipython --profile-dir=profiles/laue_live``) and the
bluesky-queueserver startup directory (``profiles/queueserver``); both only call :func:`make_session`
and put what it returns in the user namespace. Configure with environment variables:

``LAUE_LIVE_MODE``
    ``local`` (default): the analysis runs in this process (a RunRouter subscribed to the RunEngine).
    ``service``: documents go to the 0MQ proxy of ``laue-live serve`` and the views follow the
    service's spot stream.
``LAUE_LIVE_DEVICES``
    ``sim`` (default: simulated Laue detector and stage from :mod:`laue_live.sim`) or
    ``package.module``: a module defining ``laue_detector``, ``stage_x``, ``stage_y`` (your real
    ophyd devices; any area detector whose image is a 2-D data key works).
``LAUE_LIVE_METHOD``, ``LAUE_LIVE_DEVICE``
    Analysis method (``fit``, ``cnn``, ``auto``) and torch device, local mode.
``LAUE_LIVE_TILED_URI`` (+ ``LAUE_LIVE_TILED_API_KEY[_FILE]``)
    Tiled server for the analysis runs (and raw runs, with ``LAUE_LIVE_WRITE_RAW=1``), local mode.
    Unset: a local laue-live catalog server if one runs (``laue-live catalog serve``), else none.
``LAUE_LIVE_PROXY_IN`` / ``LAUE_LIVE_SERVICE_PUBLISH``
    Service mode: proxy input (default 127.0.0.1:5577) and the service's spot stream (127.0.0.1:5579).
``LAUE_LIVE_PUBLISH``
    Local mode: also publish spot tables on this ``host:port`` (for ``laue-live watch``); unset: no.
``LAUE_LIVE_VIEWS``
    ``1`` (default where a display exists) or ``0``: the matplotlib live map and frame view. Without
    them, a table row per analysed frame is printed in the terminal (``laue_live.views.LiveSpotTable``,
    like bluesky's ``LiveTable``; ``LAUE_LIVE_TABLE=0`` turns it off).
``LAUE_LIVE_MAP_COLUMN``, ``LAUE_LIVE_MAP_SPOTS``, ``LAUE_LIVE_MAP_STAT``
    What the live map shows: a per-frame value (``n_good`` default, ``mean_sim``, ``total_intensity``,
    ``median_width``...) or a spot column (``sigma_row``...) over one spot family (``good``, ``bad``,
    ``edge``, ``saturated``, ``double``, ``all``) by a statistic (``mean``, ``median``...).
"""

from __future__ import annotations

import importlib
import logging
import os
from typing import Any

logger = logging.getLogger("laue_live.session")

__all__ = ["make_session"]


def _devices(spec: str) -> dict[str, Any]:
    if spec == "sim":
        from laue_live.sim import SimLaueDetector, make_sim_stage

        stage_x, stage_y = make_sim_stage()
        return {"laue_detector": SimLaueDetector("laue", x_motor=stage_x, y_motor=stage_y),
                "stage_x": stage_x, "stage_y": stage_y}
    module = importlib.import_module(spec)  # the documented hook for real devices
    missing = [n for n in ("laue_detector", "stage_x", "stage_y") if not hasattr(module, n)]
    if missing:
        raise RuntimeError(f"LAUE_LIVE_DEVICES={spec}: the module lacks {missing}")
    return {n: getattr(module, n) for n in ("laue_detector", "stage_x", "stage_y")}


def _catalog(env) -> Any:
    from laue_live.catalog import CatalogSettings, find_running_server, open_catalog

    settings = CatalogSettings.load(env=env)
    if settings.uri is None and find_running_server(settings.data_dir) is None:
        logger.warning("no Tiled server (set LAUE_LIVE_TILED_URI or run `laue-live catalog serve`): "
                       "analysis runs are not stored, only shown")
        return None
    return open_catalog(settings)


def _want_views(env) -> bool:
    flag = env.get("LAUE_LIVE_VIEWS")
    if flag is not None:
        return flag not in ("0", "false", "no", "")
    import matplotlib

    return matplotlib.get_backend().lower() != "agg" or bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))


def make_session(env=None) -> dict[str, Any]:
    """Build everything a session needs, by name.

    ``RE``, the devices, ``raster_scan``, ``analysis``, ``live_map``, ``live_frame``, ``grain_map``
    (the orientation map of an indexed run, or ``LAUE_LIVE_GRAIN_MAP``: misorientation, strain_xx...)
    and ``laue_session`` (a summary dict). Nothing runs until a plan does.
    """
    env = os.environ if env is None else env
    from bluesky import RunEngine

    from laue_live.plans import raster_scan

    ns: dict[str, Any] = {"raster_scan": raster_scan}
    RE = RunEngine({})
    ns["RE"] = RE
    ns.update(_devices(env.get("LAUE_LIVE_DEVICES", "sim")))
    mode = env.get("LAUE_LIVE_MODE", "local")
    views: list = []
    if _want_views(env):
        from laue_live.views import LiveGrainMap, LiveSpotFrame, LiveSpotMap

        live_map = LiveSpotMap(env.get("LAUE_LIVE_MAP_COLUMN", "n_good"),
                               spots=env.get("LAUE_LIVE_MAP_SPOTS"),
                               statistic=env.get("LAUE_LIVE_MAP_STAT", "mean"))
        # drawn only for an indexed run (a scan naming its material and calibration)
        grain_map = LiveGrainMap(env.get("LAUE_LIVE_GRAIN_MAP", "orientation"))
        views = [live_map, LiveSpotFrame(), grain_map]
        ns["live_map"], ns["live_frame"], ns["grain_map"] = views
        RE.subscribe(views[1])  # the raw frames, for the frame view
    elif env.get("LAUE_LIVE_TABLE", "1") not in ("0", "false", "no"):
        from laue_live.views import LiveSpotTable

        views = [LiveSpotTable()]  # no plots: a row per analysed frame in the terminal
        ns["live_table"] = views[0]
    summary: dict[str, Any] = {"mode": mode}
    if mode == "local":
        from laue_live.analysis import FrameAnalyzer
        from laue_live.callbacks import make_run_router

        catalog = _catalog(env)
        sinks: list = list(views)
        if catalog is not None:
            from laue_live.catalog import make_analysis_writer

            sinks.append(make_analysis_writer(catalog))
            if env.get("LAUE_LIVE_WRITE_RAW") == "1":
                from bluesky_tiled_plugins import TiledWriter

                RE.subscribe(TiledWriter(catalog.raw, batch_size=1))
        if env.get("LAUE_LIVE_PUBLISH"):
            from laue_live.stream import SpotPublisher

            ns["spot_publisher"] = SpotPublisher(env["LAUE_LIVE_PUBLISH"])
            sinks.append(ns["spot_publisher"])
            summary["publish"] = ns["spot_publisher"].address
        kw = {"device": env["LAUE_LIVE_DEVICE"]} if env.get("LAUE_LIVE_DEVICE") else {}
        analyzer = FrameAnalyzer(env.get("LAUE_LIVE_METHOD", "auto"), **kw)
        ns["analysis"] = make_run_router(sinks, analyzer=analyzer)
        RE.subscribe(ns["analysis"])
        ns["catalog"] = catalog
        summary.update(method=analyzer.method, tiled=catalog is not None)
    elif mode == "service":
        from laue_live.stream import DocumentPublisher
        from laue_live.views import follow_stream

        proxy_in = env.get("LAUE_LIVE_PROXY_IN", "127.0.0.1:5577")
        publisher = DocumentPublisher(proxy_in)
        RE.subscribe(publisher)
        ns["document_publisher"] = publisher
        service = env.get("LAUE_LIVE_SERVICE_PUBLISH", "127.0.0.1:5579")
        if views:
            ns["follow_thread"], ns["follow_stop"] = follow_stream(service, views)
        summary.update(proxy_in=proxy_in, service=service)
    else:
        raise RuntimeError(f"LAUE_LIVE_MODE must be 'local' or 'service', not {mode!r}")
    summary["devices"] = env.get("LAUE_LIVE_DEVICES", "sim")
    summary["views"] = "live_map" in ns
    ns["laue_session"] = summary
    return ns
