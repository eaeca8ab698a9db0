"""LaueTools' own indexing and refinement of peak lists: the baseline of bench_indexing.py.

Runs in the LaueTools environment (``../shared/tools/lauetools_env.sh``), never in laue-live's:
    $LAUETOOLS_PY benchmarks/lauetools_index.py jobs.json out.json

jobs.json: a list of {"dat": peak list (.dat, 1-based X = column), "calibration": [dd, xcen, ycen,
xbet, xgam], "pixel_size": mm, "frame_shape": [rows, cols], "material": LaueTools key, "emin": keV,
"emax": keV, "grains": number of grains to find}. For each job it converts the .dat to a .cor
(LaueGeometry.convert2corfile) and calls spotsset.IndexSpotsSet with the settings of LaueTools'
indexing notebook (LUT of index <= 3, matching tolerances 0.5, 0.5, 0.2, 0.2 deg, strain refined),
timing the indexing call alone. out.json: per job, seconds (wall and CPU) and per grain the refined UB matrix
(q = UB B0 G*), the deviatoric strain (crystal frame), the pixel deviation and the indexed spots
(0-based row, col and h, k, l).
"""
import io
import json
import os
import sys
import tempfile
import time
import warnings
from contextlib import redirect_stdout

import numpy as np

warnings.filterwarnings("ignore")

DICT_LOOP = {
    "MATCHINGRATE_THRESHOLD_IAL": 100,
    "MATCHINGRATE_ANGLE_TOL": 0.2,
    "MAXINDEXPROBED": 6,
    "central spots indices": [0],
    "AngleTolLUT": 0.5,
    "UseIntensityWeights": False,
    "nbSpotsToIndex": 10000,
    "list matching tol angles": [0.5, 0.5, 0.2, 0.2],
    "nlutmax": 3,
    "MinimumNumberMatches": 3,
    "MinimumMatchingRate": 3,
}


def run(job, workdir):
    import LaueTools.indexingSpotsSet as ISS
    import LaueTools.LaueGeometry as LG

    base = os.path.splitext(os.path.basename(job["dat"]))[0]
    dat = os.path.join(workdir, base + ".dat")
    with open(job["dat"]) as src, open(dat, "w") as dst:
        dst.write(src.read())
    calib = {"CCDCalibParameters": list(job["calibration"]), "framedim": tuple(job["frame_shape"]),
             "detectordiameter": 300.0, "kf_direction": "Z>0", "xpixelsize": job["pixel_size"],
             "pixelsize": job["pixel_size"]}
    with redirect_stdout(io.StringIO()):
        LG.convert2corfile(os.path.basename(dat), list(job["calibration"]), dirname_in=workdir,
                           dirname_out=workdir, CCDCalibdict=calib)
        cor = base + ".cor"
        ds = ISS.spotsset()
        ds.pixelsize = job["pixel_size"]
        ds.dim = tuple(job["frame_shape"])
        ds.detectordiameter = 300.0
        ds.kf_direction = "Z>0"
        ds.key_material = job["material"]
        ds.emin, ds.emax = job["emin"], job["emax"]
        ds.importdatafromfile(os.path.join(workdir, cor))
        t0, c0 = time.perf_counter(), time.process_time()
        ds.IndexSpotsSet(os.path.join(workdir, cor), job["material"], job["emin"], job["emax"], DICT_LOOP,
                         None,
                         use_file=0, IMM=False, LUT=None, n_LUT=DICT_LOOP["nlutmax"],
                         angletol_list=DICT_LOOP["list matching tol angles"],
                         nbGrainstoFind=job.get("grains", 1),
                         starting_grainindex=0, MatchingRate_List=[1] * 8, verbose=0, previousResults=None,
                         corfilename=cor, dirnameout_fitfile=workdir)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    grains = []
    # columns: index, 2theta, chi, X, Y, intensity, [peak properties], h, k, l, energy, grain, isindexed
    summary = np.asarray(ds.getSummaryallData(), dtype=float)
    for g in sorted(ds.indexedgrains):
        rows = summary[(summary[:, -1] == 1) & (summary[:, -2] == g)] if summary.size else np.zeros((0, 12))
        dev = getattr(ds, "dict_grain_devstrain", {}).get(g)
        grains.append({
            "UB": np.asarray(ds.dict_grain_matrix[g]).tolist(),
            "B0": np.asarray(ds.B0matrix).tolist(),
            "devstrain": None if dev is None else np.asarray(dev).tolist(),
            "matching_rate": float(np.ravel(ds.dict_grain_matching_rate.get(g, [np.nan, np.nan]))[-1]),
            "pixdev": float(np.mean(ds.pixelresidues)) if g == max(ds.indexedgrains) else None,
            "n_indexed": int(len(rows)),
            # summary columns: spot index, grain, 2theta, chi, X, Y, I, h, k, l, energy
            "spots": [[r[4] - 1, r[3] - 1, int(r[-6]), int(r[-5]), int(r[-4])] for r in rows],
        })
    return {"seconds": seconds, "cpu_seconds": cpu, "grains": grains}


def main():
    jobs = json.load(open(sys.argv[1]))
    out = []
    with tempfile.TemporaryDirectory() as workdir:
        for job in jobs:
            try:
                out.append(run(job, workdir))
            except Exception as exc:  # noqa: BLE001 - the baseline reports its failures, it never stops
                out.append({"error": f"{type(exc).__name__}: {exc}"})
    json.dump(out, open(sys.argv[2], "w"))


if __name__ == "__main__":
    main()
