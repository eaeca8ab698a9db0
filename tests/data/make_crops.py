"""Make the real-frame crops of tests/data from the full frames in ../shared (run once; see README.md).

    .venv/bin/python tests/data/make_crops.py [SHARED_DIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
#: name -> (frame file under shared/data, top row, left column, side): the 640 x 640 window holding the
#: most LaueTools peaks (for the MarCCD frame: among windows that cross the round window's edge).
CROPS = {
    "nw1_0000": ("bm32/nw1_0000.tif", 256, 352, 640),
    "nw1_0001": ("bm32/nw1_0001.tif", 320, 352, 640),
    "AH12_CMT_r14_0200": ("lauetools/AH12_CMT_r14_0200.tif", 448, 800, 640),
    "Ge_blanc_0000": ("lauetools/Ge_blanc_0000.mccd", 128, 320, 640),
}


def main() -> None:
    import fabio

    shared = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parents[2] / "shared"
    for name, (rel, r0, c0, side) in CROPS.items():
        full = fabio.open(str(shared / "data" / rel)).data
        crop = np.ascontiguousarray(full[r0:r0 + side, c0:c0 + side])
        np.savez_compressed(HERE / "crops" / f"{name}.npz", frame=crop, origin=np.array([r0, c0]),
                            full_shape=np.array(full.shape), source=np.array(rel))
        print(name, crop.shape, crop.dtype)


if __name__ == "__main__":
    main()
