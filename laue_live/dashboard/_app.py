"""The dashboard's web application (FastAPI): the page, its JSON API, a websocket of live updates.

Every asset is served from the package (the plotting library's JavaScript from the ``plotly`` wheel,
which bundles plotly.js); the page's Content-Security-Policy allows no other origin, so a browser
on a closed beamline network never reaches outside. With a viewer key, every route but the login
page asks for it (a session cookie after login, or ``Authorization: Bearer KEY`` for scripts).
"""


import asyncio
import collections
import gzip
import hashlib
import hmac
import importlib.resources
import logging
import re
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np
import orjson
import pandas as pd

from laue_live._errors import LaueLiveError
from laue_live._maps import GRAIN_VALUES, MAP_VALUES, ORIENTATION, map_geometry
from laue_live._schema import SPOT_COLUMNS
from laue_live.dashboard._history import CatalogReader, plain
from laue_live.dashboard._images import DEFAULT_MAX_PX, render_frame, render_ipf_key
from laue_live.dashboard._live import LiveState
from laue_live.dashboard._settings import DashboardSettings
from laue_live.spots import write_lauetools_dat

__all__ = ["create_app", "STATIC_DIR", "SESSION_COOKIE", "TABLE_COLUMNS"]

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")
SESSION_COOKIE = "laue_live_dashboard"
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: blob:; connect-src 'self'; font-src 'self' data:; frame-ancestors 'none'; "
        "base-uri 'none'; form-action 'self'")
_OPEN_PATHS = {"/login", "/static/dashboard.css", "/favicon.ico"}
_UID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,63}$")
_UNITS = {c.name: c.unit for c in SPOT_COLUMNS}
#: Spot columns shown in the page's table, in order (the CSV and .dat downloads hold every column).
TABLE_COLUMNS = ["spot", "row", "col", "sim", "good", "edge", "masked", "saturated", "intensity",
                 "peak_intensity", "sigma_row", "sigma_col", "asp", "d_row", "d_col", "two_theta", "chi",
                 "background", "component"]
#: Start-document keys the page shows (the rest stays in Tiled).
_START_KEYS = ("uid", "raw_uid", "raw_scan_id", "scan_id", "sample", "material", "method", "model_name",
               "model_version", "time", "plan_name", "raw_plan_name", "image_field", "shape", "snaking")


def _json(obj: Any, status: int = 200):
    # the web stack only in the dashboard process
    from starlette.responses import Response

    return Response(orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS),
                    status_code=status, media_type="application/json")


def _error(status: int, message: str):
    return _json({"error": message}, status)


def _plotly_js() -> Path:
    return Path(str(importlib.resources.files("plotly") / "package_data" / "plotly.min.js"))


def _value_defs(values, *, grain: bool = False) -> list[dict[str, Any]]:
    return [{"name": v.name, "label": v.label, "unit": v.unit, "title": v.title, "grain": grain,
             "diverging": v.diverging} for v in values]


def _table_frame(table):
    """Return a spot table (mapping of arrays or DataFrame) as a DataFrame sorted by spot."""
    if not isinstance(table, pd.DataFrame):
        table = pd.DataFrame({k: np.asarray(v) for k, v in table.items()})
    df = table
    return df.sort_values("spot", kind="stable").reset_index(drop=True) if "spot" in df else df


class _Dashboard:
    """The application's state and request handlers (one per app)."""

    def __init__(self, settings: DashboardSettings, state: LiveState, reader: CatalogReader):
        self.settings = settings
        self.state = state
        self.reader = reader
        self.key = settings.key
        # the session cookie: derived from the key, so it survives a restart and never is the key
        self.token = (hmac.new(settings.key.encode(), b"laue-live dashboard session",
                               hashlib.sha256).hexdigest() if settings.key else None)
        # One picture at a time: pictures are the only heavy work, and they must never pile up.
        self.render_lock = threading.BoundedSemaphore(1)
        self.pictures: collections.OrderedDict[tuple, dict] = collections.OrderedDict()
        self.sources: collections.OrderedDict[str, Any] = collections.OrderedDict()
        self.clients = 0
        self.pushes = 0
        self.frames_pushed = 0
        self.pictures_rendered = 0
        self._plotly_gz: bytes | None = None
        self._keys: dict[str, dict[str, Any]] = {}

    # -- access --------------------------------------------------------------------------------------
    def authorized(self, cookies, headers) -> bool:
        if self.key is None:
            return True
        # bytes: compare_digest refuses str with non-ASCII characters, which anyone may send
        cookie = cookies.get(SESSION_COOKIE)
        if cookie and hmac.compare_digest(cookie.encode(), self.token.encode()):
            return True
        auth = headers.get("authorization", "")
        given = auth[7:].strip().encode() if auth.startswith("Bearer ") else b""
        return bool(given) and hmac.compare_digest(given, self.key.encode())

    # -- runs ----------------------------------------------------------------------------------------
    def run_payload(self, uid: str) -> dict[str, Any]:
        live = self.state.get(uid)
        if live is not None:
            with self.state.lock:
                start, stop = dict(live.start), live.stop
                frames = list(live.frames)
                values = {k: list(v) for k, v in live.values.items()}
                errors = dict(live.errors)
                ended = stop is not None
                grains = live.grains.payload() if live.grains is not None else None
            data = {"start": plain(start), "stop": plain(stop), "frames": frames, "values": values,
                    "errors": errors, "grains": grains}
            if not live.complete_start and self.reader.configured:
                try:  # joined after the start: the full start document is in Tiled
                    data["start"] = self.reader.run(uid)["start"] or data["start"]
                except (LaueLiveError, KeyError):
                    pass
        else:
            data = self.reader.run(uid)
            ended = data["stop"] is not None
        start = data["start"]
        geometry = map_geometry(start, n_frames=(max(data["frames"]) + 1) if data["frames"] else 1)
        indexed = bool((start.get("indexing") or {}).get("enabled"))
        grains = data.get("grains")
        if indexed and grains is None:
            grains = {"frames": [], "values": {v.name: [] for v in GRAIN_VALUES}, "rgb": [], "materials": []}
        return {"uid": uid, "live": live is not None, "ended": ended,
                "start": {k: start[k] for k in _START_KEYS if k in start}, "stop": data["stop"],
                "geometry": geometry, "frames": data["frames"], "values": data["values"],
                "errors": {str(k): v for k, v in data["errors"].items()},
                "value_defs": _value_defs(MAP_VALUES) + (
                    _value_defs((ORIENTATION, *GRAIN_VALUES), grain=True) if indexed else []),
                "grains": grains, "ipf_keys": self.ipf_keys(grains["materials"] if grains else [])}

    def ipf_keys(self, materials) -> dict[str, dict[str, Any]]:
        """Return the orientation map's colour key of each material shown (IPF-z), drawn once per material."""
        out = {}
        for name in materials:
            if name not in self._keys:
                from laue_live.indexing import ipf_sector  # why: loaded by the grains already

                try:
                    self._keys[name] = render_ipf_key(ipf_sector(name))
                except LaueLiveError as exc:  # a material of the run's own: its key from the run
                    logger.warning("no colour key for material %r: %s", name, exc)
                    continue
            out[name] = self._keys[name]
        return out

    def spots(self, uid: str, frame: int):
        table = self.state.table(uid, frame)
        if table is not None:
            return _table_frame(table)
        live = self.state.get(uid)
        return self.reader.spots(uid, frame, finished=live is None or live.stop is not None)

    def start_doc(self, uid: str) -> dict[str, Any]:
        live = self.state.get(uid)
        if live is not None and live.complete_start:
            return dict(live.start)
        return self.reader.run(uid)["start"]

    def picture(self, uid: str, frame: int, region, max_px: int) -> dict[str, Any]:
        key = (uid, frame, region, max_px)
        if key in self.pictures:
            return self.pictures[key]
        if not self.render_lock.acquire(timeout=30.0):
            raise TimeoutError("busy drawing other pictures")
        try:
            if key in self.pictures:  # drawn meanwhile for another browser
                return self.pictures[key]
            source = self.sources.get(uid)
            if source is None:
                source = self.reader.image_source(uid, self.start_doc(uid))
                self.sources[uid] = source
                while len(self.sources) > 4:
                    self.sources.popitem(last=False)
            picture = render_frame(source(frame), region=region, max_px=max_px)
            self.pictures_rendered += 1
            self.pictures[key] = picture
            while len(self.pictures) > 16:
                self.pictures.popitem(last=False)
            return picture
        finally:
            self.render_lock.release()

    def health(self) -> dict[str, Any]:
        out = self.state.health()
        out["catalog"] = {"configured": self.reader.configured, "error": self.reader.error}
        out["dashboard"] = {"clients": self.clients, "pushes": self.pushes,
                            "frames_pushed": self.frames_pushed, "pictures": self.pictures_rendered,
                            "latest_interval": self.settings.latest_interval}
        return plain(out)

    # -- live updates --------------------------------------------------------------------------------
    def updates(self, cursor: dict[str, int], sent: dict[str, Any]) -> list[dict[str, Any]]:
        """Return what changed since this browser's last update (frames per run, runs, latest frame)."""
        out: list[dict[str, Any]] = []
        with self.state.lock:
            runs = [run.summary() for run in self.state.runs.values()]
            current = self.state.current
            if runs != sent.get("runs") or current != sent.get("current"):
                out.append({"type": "runs", "current": current, "runs": runs})
                sent["runs"], sent["current"] = runs, current
            for uid, run in self.state.runs.items():
                n = cursor.get(uid, 0)
                if len(run.frames) > n:
                    new = run.frames[n:]
                    fresh = set(new)
                    out.append({"type": "frames", "uid": uid, "frames": new,
                                "values": {k: v[n:] for k, v in run.values.items()},
                                "errors": {str(f): e for f, e in run.errors.items() if f in fresh}})
                    self.frames_pushed += len(run.frames) - n
                    cursor[uid] = len(run.frames)
                grains = run.grains
                n = cursor.get(uid + "/grains", 0)
                if grains is not None and len(grains.frames) > n:
                    payload = grains.payload(n)
                    out.append({"type": "grains", "uid": uid, **payload,
                                "ipf_keys": self.ipf_keys(payload["materials"])})
                    cursor[uid + "/grains"] = len(grains.frames)
            latest = self.state.runs[current].latest if current in self.state.runs else None
            if latest is not None and latest != sent.get("latest"):
                out.append({"type": "latest", "uid": current, **latest})
                sent["latest"] = latest
        return out

    def plotly_gz(self) -> bytes:
        if self._plotly_gz is None:
            self._plotly_gz = gzip.compress(_plotly_js().read_bytes(), compresslevel=6)
        return self._plotly_gz


def create_app(settings: DashboardSettings, state: LiveState, reader: CatalogReader):
    """Build the FastAPI application of the dashboard.

    Parameters
    ----------
    settings
        :class:`DashboardSettings` (viewer key, push and picture cadences).
    state
        The :class:`LiveState` a :class:`LiveFeed` fills from the spot stream.
    reader
        :class:`CatalogReader` for past runs, frame spots and pictures.
    """
    # the web stack only in the dashboard process
    from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
    from starlette.responses import FileResponse, PlainTextResponse, RedirectResponse, Response
    from starlette.staticfiles import StaticFiles

    dash = _Dashboard(settings, state, reader)
    app = FastAPI(title="laue-live dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.dashboard = dash

    @app.middleware("http")
    async def guard(request: Request, call_next):
        path = request.url.path
        uid = path.split("/")[3] if path.startswith("/api/run/") and path.count("/") >= 3 else None
        if path not in _OPEN_PATHS and not dash.authorized(request.cookies, request.headers):
            if path.startswith("/api/"):
                response = _error(401, "a viewer key is needed: log in at /login")
            else:
                response = RedirectResponse("/login", status_code=303)
        elif uid is not None and not _UID.match(uid):
            # a run is named by its uid (or a part of it): nothing else reaches the catalog
            response = _error(404, f"not a run uid: {uid[:80]!r}")
        else:
            response = await call_next(request)
        response.headers["Content-Security-Policy"] = _CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    # -- page and assets -----------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def index():
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon():
        return Response(status_code=204)

    @app.get("/login", include_in_schema=False)
    def login_page(refused: int = 0):
        if dash.key is None:
            return RedirectResponse("/", status_code=303)
        page = (STATIC_DIR / "login.html").read_text()
        if refused:
            page = page.replace("<!--refused-->", '<p class="refused">That key was refused.</p>')
        return Response(page, media_type="text/html")

    @app.post("/login", include_in_schema=False)
    async def login(request: Request):
        body = (await request.body())[:4096].decode("utf-8", "replace")
        given = (parse_qs(body).get("key") or [""])[0].strip()
        client = request.client.host if request.client else "?"
        if dash.key is None or not hmac.compare_digest(given.encode(), dash.key.encode()):
            logger.warning("dashboard: refused a login from %s", client)  # never the key itself
            return RedirectResponse("/login?refused=1", status_code=303)
        logger.info("dashboard: viewer logged in from %s", client)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(SESSION_COOKIE, dash.token, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https", max_age=7 * 24 * 3600)
        return response

    @app.get("/logout", include_in_schema=False)
    def logout():
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    @app.get("/static/vendor/plotly.min.js", include_in_schema=False)
    def plotly_js(request: Request):
        headers = {"Cache-Control": "max-age=86400"}
        if "gzip" in request.headers.get("accept-encoding", ""):
            return Response(dash.plotly_gz(), media_type="text/javascript",
                            headers={**headers, "Content-Encoding": "gzip", "Vary": "Accept-Encoding"})
        return FileResponse(_plotly_js(), media_type="text/javascript", headers=headers)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    # -- JSON API ------------------------------------------------------------------------------------
    @app.get("/api/health")
    def api_health():
        return _json(dash.health())

    @app.get("/api/runs")
    def api_runs(scan_id: str = "", sample: str = "", since: str = "", until: str = "", limit: int = 50):
        if scan_id.strip() and not scan_id.strip().lstrip("-").isdigit():
            return _error(400, f"scan id must be a whole number, got {scan_id!r}")
        with state.lock:
            live = {run.uid: run.summary() for run in state.runs.values()}
            current = state.current
        runs, error = [], None
        if reader.configured:
            try:
                runs = reader.runs(scan_id=int(scan_id) if scan_id.strip() else None,
                                   sample=sample.strip() or None, since=since.strip() or None,
                                   until=until.strip() or None,
                                   limit=max(1, min(int(limit), 500)))
            except LaueLiveError as exc:
                if "date" in str(exc) or "ISO" in str(exc):
                    return _error(400, str(exc))
                error = str(exc)
        filtered = not (scan_id.strip() or sample.strip() or since.strip() or until.strip())
        listed = {r["uid"] for r in runs}
        for run in runs:
            run["live"] = run["uid"] in live
        if filtered or not reader.configured:  # live runs not in Tiled (yet, or no catalog) come first
            runs = [r for u, r in reversed(live.items()) if u not in listed] + runs
        return _json({"runs": runs, "current": current, "error": error})

    @app.get("/api/run/{uid}")
    def api_run(uid: str):
        try:
            return _json(dash.run_payload(uid))
        except KeyError as exc:
            return _error(404, str(exc).strip("'\""))
        except LaueLiveError as exc:
            return _error(503, str(exc))

    def _frame_table(uid: str, frame: int):
        if frame < 0:
            raise KeyError(f"frame numbers start at 0, got {frame}")
        return dash.spots(uid, frame)

    @app.get("/api/run/{uid}/frame/{frame}")
    def api_frame(uid: str, frame: int):
        live = state.get(uid)
        try:
            df = _frame_table(uid, frame)
            errors = dict(live.errors) if live is not None else reader.run(uid)["errors"]
        except KeyError as exc:
            return _error(404, str(exc).strip("'\""))
        except LaueLiveError as exc:
            return _error(503, str(exc))
        n = len(df)
        good = df["good"].to_numpy(bool) if n else np.zeros(0, bool)
        summary = {"frame": frame, "n_spots": n, "n_good": int(good.sum()),
                   "mean_sim": float(df["sim"].mean()) if n else None, "error": errors.get(frame)}
        columns = {c: df[c].to_numpy() for c in TABLE_COLUMNS if c in df}
        return _json({"uid": uid, "frame": frame, "summary": summary, "columns": columns,
                      "units": {c: _UNITS.get(c, "") for c in columns}})

    @app.get("/api/run/{uid}/frame/{frame}/image")
    def api_image(uid: str, frame: int, r0: int | None = None, r1: int | None = None, c0: int | None = None,
                  c1: int | None = None, max_px: int = DEFAULT_MAX_PX):
        region = (r0, r1, c0, c1) if None not in (r0, r1, c0, c1) else None
        try:
            picture = dash.picture(uid, frame, region, max(64, min(int(max_px), 4096)))
        except KeyError as exc:
            return _error(404, str(exc).strip("'\""))
        except (LaueLiveError, TimeoutError, ValueError) as exc:
            return _error(503, f"frame {frame}: {exc}")
        return _json(picture)

    @app.get("/api/run/{uid}/frame/{frame}/spots.csv")
    def api_csv(uid: str, frame: int):
        try:
            df = _frame_table(uid, frame)
        except KeyError as exc:
            return PlainTextResponse(str(exc).strip("'\""), status_code=404)
        except LaueLiveError as exc:
            return PlainTextResponse(str(exc), status_code=503)
        return Response(df.to_csv(index=False), media_type="text/csv", headers={
            "Content-Disposition": f'attachment; filename="spots_{uid[:8]}_frame{frame:05d}.csv"'})

    @app.get("/api/run/{uid}/frame/{frame}/spots.dat")
    def api_dat(uid: str, frame: int):
        try:
            df = _frame_table(uid, frame)
            start = dash.start_doc(uid)
        except KeyError as exc:
            return PlainTextResponse(str(exc).strip("'\""), status_code=404)
        except LaueLiveError as exc:
            return PlainTextResponse(str(exc), status_code=503)
        calibration = (start.get("laue_live") or {}).get("calibration") if isinstance(start, dict) else None
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "spots.dat"
            comment = f"laue-live analysis run {uid}, frame {frame}"
            try:
                write_lauetools_dat(df, path, calibration=calibration, comments=comment)
            except (TypeError, ValueError, KeyError):  # a calibration LaueTools' header cannot take
                write_lauetools_dat(df, path, comments=comment)
            text = path.read_text()
        return Response(text, media_type="text/plain", headers={
            "Content-Disposition": f'attachment; filename="spots_{uid[:8]}_frame{frame:05d}.dat"'})

    # -- live updates --------------------------------------------------------------------------------
    @app.websocket("/ws")
    async def ws_updates(ws: WebSocket):
        if not dash.authorized(ws.cookies, ws.headers):
            await ws.close(code=1008)
            return
        origin = ws.headers.get("origin")
        if origin and urlparse(origin).netloc != ws.headers.get("host"):
            logger.warning("dashboard: refused a websocket from origin %s", origin)
            await ws.close(code=1008)
            return
        await ws.accept()
        dash.clients += 1
        cursor: dict[str, int] = {}
        sent: dict[str, Any] = {}
        seen, health_at = -1, 0.0
        try:
            while True:
                version = state.version
                messages = dash.updates(cursor, sent) if version != seen else []
                seen = version
                now = time.monotonic()
                if messages or now - health_at > 2.0:
                    messages.append({"type": "health", **dash.health()})
                    health_at = now
                for message in messages:
                    await ws.send_text(orjson.dumps(message, option=orjson.OPT_SERIALIZE_NUMPY
                                                    | orjson.OPT_NON_STR_KEYS).decode())
                if messages:
                    dash.pushes += 1
                # What arrives until the next tick goes out together: a fixed cadence per browser,
                # whatever the frame rate, and a slow browser only ever gets the newest state.
                await asyncio.sleep(settings.push_interval)
        except (WebSocketDisconnect, RuntimeError, ConnectionError):
            pass
        finally:
            dash.clients -= 1

    return app
