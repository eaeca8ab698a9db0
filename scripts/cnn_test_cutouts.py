"""Write tests/data/cnn/real_cutouts.npz: 32 x 32 cutouts of the four real frames in ../shared.

Run from the repository root: ``.venv/bin/python scripts/cnn_test_cutouts.py``. For each frame:
the cutouts the live path hands over (``laue_live.training.frame_cutouts``: ``prepare_frame`` with
its defaults, i.e. automatic mask, local background/noise peak search, masked pixels filled with the
local median) and the exact fit; then up to 60 spots the fit calls good and 30 it calls bad, drawn
with a fixed seed. Stored: the cutouts (uint16, ADU), their pixel masks, the frame each comes from and
its initial peak (row, col, 0-based), so that the tests label them with the exact fit of the code
under test. Provenance and license: README.md.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from laue_live import is_good_spot
from laue_live.io import read_frame
from laue_live.spots import prepare_frame
from laue_live.training import frame_cutouts

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
FRAMES = {
    "nw1_0000": SHARED / "bm32" / "nw1_0000.tif",
    "nw1_0001": SHARED / "bm32" / "nw1_0001.tif",
    "AH12_CMT_r14_0200": SHARED / "lauetools" / "AH12_CMT_r14_0200.tif",
    "Ge_blanc_0000": SHARED / "lauetools" / "Ge_blanc_0000.mccd",
}


def main() -> None:
    """Write the cutouts (see the module docstring)."""
    cut, frame, peak, masks = [], [], [], []
    for i, (name, path) in enumerate(FRAMES.items()):
        f = read_frame(path)
        pk, c, t = frame_cutouts(f)
        pm = prepare_frame(f).pixel_mask
        pm = np.zeros(c.shape, dtype=bool) if pm is None else pm
        good = is_good_spot(t["sim"].to_numpy(), t["d_row"].to_numpy(), t["d_col"].to_numpy())
        rng = np.random.default_rng(i)
        pick = np.sort(
            np.concatenate(
                [rng.permutation(np.flatnonzero(good))[:60], rng.permutation(np.flatnonzero(~good))[:30]]
            )
        )
        cut.append(np.rint(c[pick]).astype(np.uint16))  # median-filled pixels are whole ADU or halves
        masks.append(pm[pick])
        frame += [name] * len(pick)
        peak.append(pk[pick])
        print(f"{name}: {len(pk)} peaks, {int(good.sum())} good; kept {len(pick)}")
    out = ROOT / "tests" / "data" / "cnn" / "real_cutouts.npz"
    np.savez_compressed(out, cutouts=np.concatenate(cut), pixel_mask=np.concatenate(masks),
                        frame=np.array(frame), peak=np.concatenate(peak))
    print(f"wrote {out} ({out.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
