"""``laue-live watch``: a terminal view of the live spot stream, for people without a display."""

from __future__ import annotations

import typer

__all__ = ["watch"]

_DEFAULT = "127.0.0.1:5579"  # where laue-live serve publishes unless told otherwise


watch_app = typer.Typer()


_WATCH_HELP = """Watch the spot tables published by `laue-live serve` (or any SpotPublisher):
one line per frame (good / all spots, mean Sim, and frames/s as the service analyses them, from the
tables' analysis times, not from when they reach this terminal), WARNING lines for poor or failed frames
(e.g. "frame 212: 3 good spots, mean Sim 0.12"), and the service's status reports with --status.
With --map-png, the raster quality map is also written as a PNG (every --png-every frames and at
the end of each run), for a look without a display. Ctrl-C to quit."""


@watch_app.command("watch", help=_WATCH_HELP,
                   short_help="Watch the published spot tables: a line per frame, warnings, a map PNG.")
def watch(
    address: str = typer.Argument(_DEFAULT, help="host:port of the publisher."),
    min_good: int = typer.Option(5, help="Warn when a frame has fewer good spots."),
    min_sim: float = typer.Option(0.3, help="Warn when a frame's mean Sim is lower."),
    every: int = typer.Option(1, help="Print one ordinary frame line every N frames (warnings always)."),
    status: bool = typer.Option(False, "--status", help="Also print the service's status reports."),
    idle_exit: float = typer.Option(0.0, help="Exit after this many seconds without a message (0: never)."),
    frames: int = typer.Option(0, help="Exit after this many frames (0: never)."),
    runs: int = typer.Option(0, help="Exit after this many analysis runs have ended (0: never)."),
    map_png: str = typer.Option(None, help="Write the live raster map to this PNG file."),
    map_column: str = typer.Option("n_good", help="What the map shows: a per-frame value (n_good, n_spots, "
                                   "good_fraction, mean_sim, total_intensity, median_width, seconds, failed) "
                                   "or a spot column (sim, sigma_row, intensity, ...) with --map-spots."),
    map_spots: str = typer.Option(None, help="With a spot column: which spots, all, good, bad, edge, "
                                  "saturated or double."),
    map_stat: str = typer.Option("mean", help="With a spot column: mean, median, min, max, sum or count."),
    png_every: int = typer.Option(10, help="Rewrite the PNG every N frames (and at each run's end)."),
    curve_secret: str = typer.Option(None, help="CURVE: this client's secret certificate "
                                     "(env LAUE_LIVE_CURVE_CLIENT_SECRET)."),
    curve_server: str = typer.Option(None, help="CURVE: the publisher's public certificate "
                                     "(env LAUE_LIVE_CURVE_SERVER_PUBLIC)."),
) -> None:
    from pathlib import Path

    from laue_live._errors import LaueLiveError, SettingsError
    from laue_live.stream import (
        TOPIC_DOC,
        TOPIC_HELLO,
        TOPIC_SPOTS,
        TOPIC_STATUS,
        CurveClient,
        SpotSubscriber,
        curve_client_from_env,
        decode_spot_table,
    )
    from laue_live.views import FrameTicker

    if ":" not in address and not address.isdigit():  # "localhost": a host without its port
        port = _DEFAULT.rsplit(":", 1)[1]
        raise SettingsError(f"address {address!r} lacks a port: write e.g. '{address}:{port}' "
                            f"(laue-live serve publishes on port {port} unless told otherwise)")
    try:
        curve = (CurveClient(Path(curve_secret), Path(curve_server)) if curve_secret and curve_server
                 else curve_client_from_env())
        sub = SpotSubscriber(address, status=status, documents=bool(map_png) or runs > 0, curve=curve)
    except LaueLiveError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    ticker = FrameTicker(min_good=min_good, min_mean_sim=min_sim, every=every)
    live_map = None
    if map_png:
        import matplotlib

        matplotlib.use("Agg")  # a file, never a window
        from laue_live.views import LiveSpotMap

        live_map = LiveSpotMap(map_column, spots=map_spots, statistic=map_stat)
    typer.echo(f"watching {address} (Ctrl-C to quit)")
    seen = ended = 0
    try:
        while (frames <= 0 or seen < frames) and (runs <= 0 or ended < runs):
            message = sub.receive(idle_exit if idle_exit > 0 else 1.0)
            if message is None:
                if idle_exit > 0:
                    typer.echo(f"no message for {idle_exit:g} s; exiting")
                    break
                continue
            if message.topic == TOPIC_HELLO:
                typer.echo("connected")
            elif message.topic == TOPIC_DOC:
                doc = message.payload["doc"]
                if live_map is not None:
                    live_map(message.name, doc)
                    if message.name == "stop" and live_map.n_updates:
                        live_map.savefig(map_png, dpi=100)
                        typer.echo(f"map written to {map_png}")
                if message.name == "stop":
                    ended += 1
                    typer.echo(f"== analysis run {str(doc.get('run_start', '?'))[:8]} ended: "
                               f"{doc.get('exit_status')} ({doc.get('reason', '')})")
            elif message.topic == TOPIC_STATUS:
                typer.echo(ticker.status_line(message.payload.get("status") or {}))
            elif message.topic == TOPIC_SPOTS:
                p = message.payload
                try:
                    table = decode_spot_table(p)
                except LaueLiveError as exc:
                    typer.echo(f"WARNING bad spot table: {exc}")
                    continue
                seen += 1
                if live_map is not None and live_map.n_updates and seen % max(1, png_every) == 0:
                    live_map.savefig(map_png, dpi=100)
                run, frame = p.get("run") or {}, int(p.get("frame", -1))
                for line in ticker.lines(run, frame, table, p.get("summary"), analysed_at=p.get("time")):
                    typer.echo(line)
    except KeyboardInterrupt:
        pass
    finally:
        stats = sub.stats()
        sub.close()
    typer.echo(f"{ticker.frames} frames, {ticker.warnings} warnings, {stats['missed']} missed, "
               f"{stats['rejected']} rejected messages")
