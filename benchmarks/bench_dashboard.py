"""CPU cost of the web dashboard while it follows a live scan, beside a bare stream subscriber.

A publisher in this process sends what ``laue-live serve`` sends for a raster scan at ``--rate``
frames/s: each frame's spot table (``--spots`` spots) with its summary, the start/stop documents and
a status report every second. Three consumers follow the same stream at the same time, each in its
own process, and the CPU time each uses over ``--seconds`` is printed as % of one core:

* baseline: a bare :class:`~laue_live.stream.SpotSubscriber` that decodes every table (the least any
  live view costs);
* ``laue-live dashboard`` with no browser open;
* ``laue-live dashboard`` with one page open in headless Chromium (it receives the coalesced
  updates; the Chromium figure itself is printed apart: the browser runs on the viewer's machine).

Pictures of frames are made only when a browser asks (the latest frame every ``latest_interval``
seconds, a clicked frame), one at a time: their cost is measured apart on real-size frames
(``--frame-shape``) read from an HDF5 file, and added at the page's cadence.

    python benchmarks/bench_dashboard.py --seconds 30 --rate 10 --spots 500
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

from laue_live.catalog import random_spot_table
from laue_live.dashboard import READY_LINE, render_frame
from laue_live.stream import SpotPublisher

_BASELINE = """
import sys
from laue_live.stream import SpotSubscriber
sub = SpotSubscriber(sys.argv[1], documents=("start", "stop"), status=True)
print("ready", flush=True)
n = 0
for _ in sub.frames(timeout=3600):
    n += 1
"""

_CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"]


def _cpu(proc: psutil.Process, children: bool = False) -> float:
    procs = [proc] + (proc.children(recursive=True) if children else [])
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def _dashboard(address: str, log: Path) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-c", "from laue_live.cli import main; main()", "dashboard", "--stream", address,
           "--port", "0", "--no-tiled"]
    with open(log, "wb") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            if line.startswith(READY_LINE):
                return proc, line[len(READY_LINE):].split()[0]
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise SystemExit(f"the dashboard did not start: {log.read_text()[-2000:]}")


def _picture_cost(shape: tuple[int, int], max_px: int, n: int = 5) -> tuple[float, float]:
    """CPU seconds to read one frame from HDF5 and render it (whole frame), and the picture's size."""
    import h5py

    rng = np.random.default_rng(0)
    frames = rng.poisson(1000, size=(n, *shape)).astype(np.uint16)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "frames.h5"
        with h5py.File(path, "w") as f:
            f.create_dataset("/entry/data/data", data=frames, chunks=(1, *shape))
        from laue_live.analysis import HDF5FrameLoader

        t0 = time.process_time()
        size = 0
        for i in range(n):
            picture = render_frame(HDF5FrameLoader(str(path), "/entry/data/data", i)(), max_px=max_px)
            size += len(picture["src"])
        return (time.process_time() - t0) / n, size / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="measurement window (s)")
    ap.add_argument("--rate", type=float, default=10.0, help="frames/s published")
    ap.add_argument("--spots", type=int, default=500, help="spots per frame")
    ap.add_argument("--frame-shape", default="2018x2016", help="detector frame for the picture cost")
    ap.add_argument("--latest-interval", type=float, default=2.0,
                    help="seconds between latest-frame pictures")
    ap.add_argument("--no-browser", action="store_true", help="skip the Chromium row")
    args = ap.parse_args()

    publisher = SpotPublisher("127.0.0.1:0", hwm=10000)
    tmp = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    procs: dict[str, psutil.Process] = {}
    popen = []
    base = subprocess.Popen([sys.executable, "-c", _BASELINE, publisher.address], stdout=subprocess.PIPE,
                            text=True)
    popen.append(base)
    base.stdout.readline()
    procs["baseline: bare SpotSubscriber (decodes every table)"] = psutil.Process(base.pid)
    d1, _ = _dashboard(publisher.address, tmp / "dash1.log")
    d2, url = _dashboard(publisher.address, tmp / "dash2.log")
    popen += [d1, d2]
    procs["laue-live dashboard, no browser"] = psutil.Process(d1.pid)
    procs["laue-live dashboard, 1 browser page"] = psutil.Process(d2.pid)
    if not publisher.wait_for_subscribers(3, 60):
        raise SystemExit("the consumers did not subscribe")

    browser = page = pw = None
    chromium = Path("/usr/bin/chromium")
    if not args.no_browser and chromium.exists():
        from playwright.sync_api import sync_playwright

        pw = sync_playwright().start()
        browser = pw.chromium.launch_persistent_context(tempfile.mkdtemp(), executable_path=str(chromium),
                                                        headless=True, args=_CHROMIUM_ARGS,
                                                        viewport={"width": 1500, "height": 1250})
        page = browser.pages[0] if browser.pages else browser.new_page()
        page.goto(url)
        page.wait_for_function("() => window.Plotly !== undefined", timeout=60000)

    from event_model import compose_run

    from laue_live.catalog import analysis_data_keys

    n_frames = int(args.seconds * args.rate) + int(5 * args.rate)
    cols = 50
    shape = [max(1, -(-n_frames // cols)), cols]
    run = compose_run(metadata={"kind": "laue-spots", "raw_uid": "bench", "method": "fit", "raw_scan_id": 1,
                                "shape": shape, "extents": [[0, shape[0] - 1], [0, cols - 1]],
                                "motors": ["stage_y", "stage_x"], "snaking": [False, False]})
    publisher("start", run.start_doc)
    spots = run.compose_descriptor(name="spots", data_keys=analysis_data_keys("spots"))
    frames = run.compose_descriptor(name="frames", data_keys=analysis_data_keys("frames"))
    publisher("descriptor", spots.descriptor_doc)
    publisher("descriptor", frames.descriptor_doc)
    rng = np.random.default_rng(1)
    period = 1.0 / args.rate
    warmup = 5.0
    t_start = time.monotonic()
    measured_from = None
    cpu0: dict[str, float] = {}
    browser_proc = None
    for i in range(n_frames):
        now = time.monotonic()
        if measured_from is None and now - t_start >= warmup:
            measured_from = now
            cpu0 = {k: _cpu(p) for k, p in procs.items()}
            if browser is not None:
                browser_proc = [p for p in psutil.Process().children(recursive=True) if "chrom" in p.name()]
                cpu0["chromium"] = sum(_cpu(p) for p in browser_proc)
        table = random_spot_table(i, args.spots, rng)
        t = time.time()
        stamps = {k: np.full(args.spots, t) for k in table}
        publisher("event_page", spots.compose_event_page(data=table, timestamps=stamps,
                                                         time=np.full(args.spots, t), validate=False))
        good = table["good"]
        summary = {"frame": i, "x": float(i % cols), "y": float(i // cols), "n_spots": args.spots,
                   "n_good": int(good.sum()), "mean_sim": float(table["sim"].mean()), "seconds": 0.05,
                   "failed": False, "error": ""}
        publisher("event", frames.compose_event(data=summary, timestamps=dict.fromkeys(summary, t),
                                                validate=False))
        if i % max(1, int(args.rate)) == 0:
            publisher.publish_status({"state": "analysing", "frames_analysed": i, "frames_failed": 0,
                                      "frames_dropped": 0, "frames_per_s": args.rate, "queue_depth": 0,
                                      "status_interval": 1.0})
        # a fixed schedule, not sleep(period): the rate holds whatever publishing costs
        delay = t_start + (i + 1) * period - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    window = time.monotonic() - measured_from
    cpu1 = {k: _cpu(p) for k, p in procs.items()}
    if browser_proc:
        cpu1["chromium"] = sum(_cpu(p) for p in browser_proc)
    publisher("stop", run.compose_stop(exit_status="success"))

    frame_shape = tuple(int(v) for v in args.frame_shape.split("x"))
    picture_s, picture_bytes = _picture_cost(frame_shape, 512)  # the latest frame, as the page asks
    click_s, click_bytes = _picture_cost(frame_shape, 1024)  # a clicked frame
    load = os.getloadavg()
    print(f"\ndashboard CPU while following {args.rate:g} frames/s of {args.spots} spots "
          f"({window:.0f} s window, load average {load[0]:.2f}, {psutil.cpu_count()} cores)")
    print(f"{'consumer':<55} {'CPU % of one core':>18}")
    for name in procs:
        print(f"{name:<55} {100 * (cpu1[name] - cpu0[name]) / window:>18.2f}")
    pictures = 100 * picture_s / args.latest_interval
    label = (f"+ latest-frame pictures, 1 per {args.latest_interval:g} s "
             f"({args.frame_shape}, {1000 * picture_s:.0f} ms each)")
    print(f"{label:<55} {pictures:>18.2f}")
    page_row = "laue-live dashboard, 1 browser page"
    with_page = 100 * (cpu1[page_row] - cpu0[page_row])
    print(f"{'= dashboard with a page open, pictures included':<55} {with_page / window + pictures:>18.2f}"
          f"   (target < 5)")
    if "chromium" in cpu1:
        print(f"{'(Chromium itself, on the viewer machine)':<55} "
              f"{100 * (cpu1['chromium'] - cpu0['chromium']) / window:>18.2f}")
    print(f"latest-frame picture (512 px): {picture_bytes / 1e3:.0f} kB; a clicked frame (1024 px): "
          f"{1000 * click_s:.0f} ms CPU, {click_bytes / 1e3:.0f} kB "
          "(PNG, base64; Poisson noise: the worst case)")

    if browser is not None:
        browser.close()
        pw.stop()
    for p in popen:
        p.terminate()
    for p in popen:
        p.wait(10)
    publisher.close()


if __name__ == "__main__":
    main()
