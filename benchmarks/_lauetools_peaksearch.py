"""Run LaueTools' own PeakSearch (with its Gaussian fits) on one frame; print JSON. LaueTools' venv only.

    $LAUETOOLS_PY benchmarks/_lauetools_peaksearch.py FRAME CCDLABEL [JSON_PARAMS]

Prints one JSON line: ``n`` peaks, ``cpu`` and ``wall`` seconds of the PeakSearch call (reading the
file included, as LaueTools does it), ``xy`` the 1-based (X, Y) positions. Parameters default to those
of the BM32 peak lists in ../shared (auto background, threshold 70, box 16, Gaussian fits).
"""

import json
import sys
import time
import warnings

warnings.filterwarnings("ignore")


def main():
    import LaueTools.readmccd as rmccd  # in the LaueTools venv only

    path, ccd = sys.argv[1], sys.argv[2]
    params = dict(CCDLabel=ccd, PixelNearRadius=10, removeedge=2, IntensityThreshold=70,
                  local_maxima_search_method=0, boxsize=16, position_definition=1, verbose=0,
                  fit_peaks_gaussian=1, xtol=0.001, FitPixelDev=2.0, return_histo=0,
                  Data_for_localMaxima="auto_background", write_execution_time=0)
    if len(sys.argv) > 3:
        params.update(json.loads(sys.argv[3]))
    t0, w0 = time.process_time(), time.perf_counter()
    res = rmccd.PeakSearch(path, **params)
    cpu, wall = time.process_time() - t0, time.perf_counter() - w0
    peaks = res[0]
    xy = [] if peaks is None or len(peaks) == 0 else [[float(p[0]), float(p[1])] for p in peaks]
    print(json.dumps({"n": len(xy), "cpu": cpu, "wall": wall, "xy": xy}))


if __name__ == "__main__":
    main()
