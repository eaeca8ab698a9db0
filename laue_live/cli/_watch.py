"""``laue-live watch``: a terminal view of the live spot stream, for people without a display."""

from __future__ import annotations

import typer

from laue_live.cli._app import app

__all__ = ["watch"]


@app.command(help="""Watch the spot tables published by `laue-live serve` (or any SpotPublisher):
one line per frame (good / all spots, mean Sim, frames/s), WARNING lines for poor or failed frames
(e.g. "frame 212: 3 good spots, mean Sim 0.12"), and the service's status reports with --status.
Ctrl-C to quit.""")
def watch(
    address: str = typer.Argument("127.0.0.1:5579", help="host:port of the publisher."),
    min_good: int = typer.Option(5, help="Warn when a frame has fewer good spots."),
    min_sim: float = typer.Option(0.3, help="Warn when a frame's mean Sim is lower."),
    every: int = typer.Option(1, help="Print one ordinary frame line every N frames (warnings always)."),
    status: bool = typer.Option(False, "--status", help="Also print the service's status reports."),
    idle_exit: float = typer.Option(0.0, help="Exit after this many seconds without a message (0: never)."),
    frames: int = typer.Option(0, help="Exit after this many frames (0: never)."),
    curve_secret: str = typer.Option(None, help="CURVE: this client's secret certificate "
                                     "(env LAUE_LIVE_CURVE_CLIENT_SECRET)."),
    curve_server: str = typer.Option(None, help="CURVE: the publisher's public certificate "
                                     "(env LAUE_LIVE_CURVE_SERVER_PUBLIC)."),
) -> None:
    from pathlib import Path

    from laue_live._errors import LaueLiveError
    from laue_live.stream import (
        TOPIC_HELLO,
        TOPIC_SPOTS,
        TOPIC_STATUS,
        CurveClient,
        SpotSubscriber,
        curve_client_from_env,
        decode_spot_table,
    )
    from laue_live.views import FrameTicker

    try:
        curve = (CurveClient(Path(curve_secret), Path(curve_server)) if curve_secret and curve_server
                 else curve_client_from_env())
        sub = SpotSubscriber(address, status=status, curve=curve)
    except LaueLiveError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    ticker = FrameTicker(min_good=min_good, min_mean_sim=min_sim, every=every)
    typer.echo(f"watching {address} (Ctrl-C to quit)")
    seen = 0
    try:
        while frames <= 0 or seen < frames:
            message = sub.receive(idle_exit if idle_exit > 0 else 1.0)
            if message is None:
                if idle_exit > 0:
                    typer.echo(f"no message for {idle_exit:g} s; exiting")
                    break
                continue
            if message.topic == TOPIC_HELLO:
                typer.echo("connected")
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
                run, frame = p.get("run") or {}, int(p.get("frame", -1))
                for line in ticker.lines(run, frame, table, p.get("summary")):
                    typer.echo(line)
    except KeyboardInterrupt:
        pass
    finally:
        stats = sub.stats()
        sub.close()
    typer.echo(f"{ticker.frames} frames, {ticker.warnings} warnings, {stats['missed']} missed, "
               f"{stats['rejected']} rejected messages")
