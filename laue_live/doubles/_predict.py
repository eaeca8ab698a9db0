"""Inference of the double-spot network: one or two spots per cutout, and each component's parameters."""

from __future__ import annotations

import functools
import logging
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from laue_live._errors import ModelError
from laue_live._rules import CUTOUT_CENTRE
from laue_live._xp import resolve_device
from laue_live.cnn import fuse_batchnorm, int8_available, quantize_int8
from laue_live.doubles._fit import fit_two_gaussians
from laue_live.doubles._network import POS_SCALE, load_double_model
from laue_live.doubles._synth import make_doubles

__all__ = ["DoublePredictor", "get_double_predictor", "decode_outputs", "linear_amplitudes",
           "default_double_model_path",
           "COMPONENT_COLUMNS"]

logger = logging.getLogger(__name__)

DEFAULT_DOUBLE_MODEL = "doubles_net.safetensors"
#: Default smallest separation (px) of two components reported as a double.
MIN_SEPARATION = 2.0

#: Columns of :meth:`DoublePredictor.predict` (cutout coordinates, px; intensities ADU px^2).
COMPONENT_COLUMNS = ("p_double", "n_components", "row1", "col1", "sigma_row1", "sigma_col1", "amp1",
                     "row2", "col2", "sigma_row2", "sigma_col2", "amp2", "background", "ratio")


def default_double_model_path() -> Path:
    """Return the shipped double-spot model (``models/doubles_net.safetensors``)."""
    here = Path(__file__).resolve()
    for cand in (here.parents[1] / "models" / DEFAULT_DOUBLE_MODEL,
                 here.parents[2] / "models" / DEFAULT_DOUBLE_MODEL):
        if cand.is_file():
            return cand
    raise ModelError(f"the double-spot model {DEFAULT_DOUBLE_MODEL} is not installed; pass model=<path>")


def decode_outputs(out: np.ndarray, threshold: float = 0.5, min_separation: float = 0.0) -> pd.DataFrame:
    """Raw network outputs ``(N, 10)`` -> per-cutout components (no amplitudes yet).

    A cutout is called double when P(double) > ``threshold`` and the two predicted components are
    at least ``min_separation`` px apart. Component 1 is the slot with the larger intensity
    fraction; for a cutout called single, component 2 columns are NaN and ``ratio`` is NaN.
    """
    out = np.asarray(out, dtype=np.float64)
    p = 1 / (1 + np.exp(-out[:, 0]))
    frac = 1 / (1 + np.exp(-out[:, 9]))
    sep = POS_SCALE * np.hypot(out[:, 1] - out[:, 5], out[:, 2] - out[:, 6])
    dbl = (p > threshold) & (sep >= min_separation)
    a, b = out[:, 1:5].copy(), out[:, 5:9].copy()
    swap = dbl & (frac < 0.5)
    a[swap], b[swap] = out[swap, 5:9], out[swap, 1:5]
    f1 = np.where(swap, 1 - frac, frac)
    c = float(CUTOUT_CENTRE)
    df = pd.DataFrame({
        "p_double": p, "n_components": np.where(dbl, 2, 1),
        "row1": c + POS_SCALE * a[:, 0], "col1": c + POS_SCALE * a[:, 1],
        "sigma_row1": np.exp(a[:, 2]), "sigma_col1": np.exp(a[:, 3]),
        "row2": c + POS_SCALE * b[:, 0], "col2": c + POS_SCALE * b[:, 1],
        "sigma_row2": np.exp(b[:, 2]), "sigma_col2": np.exp(b[:, 3]),
        "ratio": f1 / np.clip(1 - f1, 1e-6, None),
    })
    for col in ("row2", "col2", "sigma_row2", "sigma_col2", "ratio"):
        df.loc[~dbl, col] = np.nan
    return df


def linear_amplitudes(cutouts: np.ndarray, comp: pd.DataFrame) -> np.ndarray:
    """Least-squares integrated intensities and background for known positions and widths.

    The model is linear in ``(amp1, amp2, background)`` once positions and widths are fixed, so
    they are solved exactly (batched 3 x 3 normal equations; 2 x 2 for single components).

    Returns
    -------
    numpy.ndarray
        (n, 3): amp1, amp2 (NaN for singles), background.
    """
    x = np.asarray(cutouts, dtype=np.float64)
    n, h, w = x.shape
    rr = np.arange(h, dtype=np.float64)[None, :, None]
    cc = np.arange(w, dtype=np.float64)[None, None, :]

    def unit(k):
        r, c = comp[f"row{k}"].to_numpy()[:, None, None], comp[f"col{k}"].to_numpy()[:, None, None]
        sr = comp[f"sigma_row{k}"].to_numpy()[:, None, None]
        sc = comp[f"sigma_col{k}"].to_numpy()[:, None, None]
        g = np.exp(-0.5 * (((rr - r) / sr) ** 2 + ((cc - c) / sc) ** 2)) / (2 * np.pi * sr * sc)
        return np.nan_to_num(g).reshape(n, -1)

    g1, g2 = unit(1), unit(2)
    dbl = comp["n_components"].to_numpy() == 2
    g2[~dbl] = 0.0
    design = np.stack([g1, g2, np.ones_like(g1)], axis=-1)  # (n, N, 3)
    ata = design.transpose(0, 2, 1) @ design
    ata[~dbl, 1, 1] = 1.0  # singles: amp2 is fixed at 0 by an identity row
    atb = (design.transpose(0, 2, 1) @ x.reshape(n, -1, 1))[..., 0]
    sol = np.linalg.solve(ata + 1e-9 * np.eye(3), atb[..., None])[..., 0]
    sol[~dbl, 1] = np.nan
    return sol


class DoublePredictor:
    """The double-spot network ready for inference (load once, call :meth:`predict` many times).

    Parameters
    ----------
    model
        ``.safetensors`` file written by :func:`laue_live.doubles.save_double_model`; ``None`` for
        the shipped ``models/doubles_net.safetensors``.
    device
        ``"auto"`` (CUDA if present, else CPU), ``"cpu"``, ``"cuda"``, ... or a torch device.
    threshold
        Probability above which a cutout is called a double.
    min_separation
        Components predicted closer than this (px) are reported as one spot: below ~2 px the
        network also splits real single spots with tails or streaks (measured on held-out real
        spots, see ``docs/report/doubles/REPORT.md``), and such close pairs are not resolved anyway.
    batch_size
        Cutouts per forward pass.
    quantize
        int8 CPU inference (the spot CNN's :func:`laue_live.cnn.quantize_int8`, calibrated on a fixed
        set of simulated cutouts); float32 otherwise.
    """

    def __init__(self, model: str | Path | None = None, device: str | torch.device = "cpu", *,
                 threshold: float = 0.5, min_separation: float = MIN_SEPARATION, batch_size: int = 1024,
                 quantize: bool = False) -> None:
        self.path = Path(model) if model is not None else default_double_model_path()
        net, self.metadata = load_double_model(self.path)
        self.device = resolve_device(device)
        # same trunk layout as the spot CNN: fold batch norm into the convolutions for inference
        self.arch = net.arch
        self.quantized = bool(quantize)
        if self.quantized:
            self.network = self._int8(net)
        else:
            self.network = fuse_batchnorm(net).to(self.device).eval()
        self.threshold = threshold
        self.min_separation = min_separation
        self.batch_size = batch_size
        self._lock = threading.Lock()

    def _int8(self, net):
        if self.device.type != "cpu" or not int8_available():
            raise ModelError(f"int8 inference needs the CPU and an int8 engine (device={self.device})")
        # deterministic calibration set: simulated singles and doubles from a fixed seed
        cal, _ = make_doubles(256, rng=np.random.default_rng(20231), double_fraction=0.5)
        x = torch.from_numpy(cal)
        lo = x.amin(dim=(-2, -1), keepdim=True)
        x = ((x - lo) / (x.amax(dim=(-2, -1), keepdim=True) - lo).clamp_min(1e-30))[:, None]
        return quantize_int8(net, x)

    @torch.inference_mode()
    def raw(self, cutouts: np.ndarray) -> np.ndarray:
        """Raw outputs ``(N, 10)`` for ``(N, 32, 32)`` cutouts in ADU."""
        x = np.asarray(cutouts, dtype=np.float32)
        if x.ndim == 2:
            x = x[None]
        side = self.arch.cutout
        if x.ndim != 3 or x.shape[1:] != (side, side):
            raise ValueError(f"cutouts must have shape (N, {side}, {side}), got {x.shape}")
        out = np.empty((len(x), 10), np.float32)
        with self._lock:
            for i in range(0, len(x), self.batch_size):
                t = torch.from_numpy(x[i:i + self.batch_size]).to(self.device)
                lo = t.amin(dim=(-2, -1), keepdim=True)
                span = t.amax(dim=(-2, -1), keepdim=True) - lo
                t = torch.where(span > 0, (t - lo) / span.clamp_min(1e-30), torch.zeros_like(t))[:, None]
                out[i:i + len(t)] = self.network(t).float().cpu().numpy()
        return out

    def predict(self, cutouts: np.ndarray, *, refine: bool = False, refine_iter: int = 30) -> pd.DataFrame:
        """One row per cutout with :data:`COMPONENT_COLUMNS` (cutout coordinates).

        Parameters
        ----------
        cutouts
            (N, 32, 32) raw cutouts, ADU.
        refine
            Polish the cutouts called double with the exact two-Gaussian fit started from the
            network's components (a few Levenberg-Marquardt steps, float32): exact positions at a
            small extra cost.
        refine_iter
            Iteration limit of that polish.
        """
        x = np.asarray(cutouts)
        if x.ndim == 2:
            x = x[None]
        if len(x) == 0:
            return pd.DataFrame({c: np.empty(0) for c in (*COMPONENT_COLUMNS, "refined")})
        df = decode_outputs(self.raw(x), self.threshold, self.min_separation)
        amps = linear_amplitudes(x, df)
        df["amp1"], df["amp2"], df["background"] = amps[:, 0], amps[:, 1], amps[:, 2]
        df["refined"] = False
        dbl = np.flatnonzero(df["n_components"].to_numpy() == 2)
        if refine and dbl.size:
            sub = df.iloc[dbl]
            start = np.stack([np.maximum(sub.amp1, 1.0), sub.row1, sub.col1, sub.sigma_row1, sub.sigma_col1,
                              np.maximum(sub.amp2, 1.0), sub.row2, sub.col2, sub.sigma_row2, sub.sigma_col2,
                              sub.background], axis=1)
            fit = fit_two_gaussians(x[dbl], start=start, device=self.device, dtype=torch.float32,
                                    max_iter=refine_iter, ftol=1e-6, xtol=1e-6)
            p = fit.params
            r1, c1, r2, c2 = (sub[k].to_numpy() for k in ("row1", "col1", "row2", "col2"))
            same = np.maximum(np.hypot(p[:, 1] - r1, p[:, 2] - c1), np.hypot(p[:, 6] - r2, p[:, 7] - c2))
            swap = np.maximum(np.hypot(p[:, 1] - r2, p[:, 2] - c2), np.hypot(p[:, 6] - r1, p[:, 7] - c1))
            # the polish may move each component a little, never jump to another solution
            ok = np.isfinite(p).all(1) & (np.minimum(same, swap) < 2.0)
            # the polish may merge the pair: below min_separation it is one spot after all
            sep = np.hypot(p[:, 1] - p[:, 6], p[:, 2] - p[:, 7])
            merged = np.isfinite(p).all(1) & (sep < self.min_separation)
            if merged.any():
                gone = df.index[dbl[merged]]
                for col in ("row2", "col2", "sigma_row2", "sigma_col2", "amp2"):
                    df.loc[gone, col] = np.nan
                df.loc[gone, "n_components"] = 1
            ok &= ~merged
            cols = ["amp1", "row1", "col1", "sigma_row1", "sigma_col1", "amp2", "row2", "col2",
                    "sigma_row2", "sigma_col2", "background"]
            idx = dbl[ok]
            for j, col in enumerate(cols):
                df.loc[df.index[idx], col] = p[ok, j]
            df.loc[df.index[idx], "refined"] = True
        # component 1 is the brighter one everywhere (the network's fraction may disagree slightly)
        swap = (df["n_components"].to_numpy() == 2) & (df["amp2"].to_numpy() > df["amp1"].to_numpy())
        if swap.any():
            one = ["amp1", "row1", "col1", "sigma_row1", "sigma_col1"]
            two = ["amp2", "row2", "col2", "sigma_row2", "sigma_col2"]
            a, b = df.loc[swap, one].to_numpy(), df.loc[swap, two].to_numpy()
            df.loc[swap, one], df.loc[swap, two] = b, a
        df["ratio"] = np.where(df["n_components"] == 2, df["amp1"] / df["amp2"].where(df["amp2"] > 0), np.nan)
        if not np.isfinite(df[["row1", "col1"]].to_numpy()).all():
            logger.warning("double-spot network produced non-finite outputs (non-finite input?)")
        return df

    def __repr__(self) -> str:
        return f"DoublePredictor({str(self.path)!r}, device={str(self.device)!r})"


@functools.lru_cache(maxsize=8)
def _cached(path: str | None, device: str, threshold: float) -> DoublePredictor:
    return DoublePredictor(path, device, threshold=threshold)


def get_double_predictor(model: str | Path | None = None, device: str | torch.device = "cpu",
                         threshold: float = 0.5) -> DoublePredictor:
    """Return the process-wide :class:`DoublePredictor` for ``(model, device, threshold)``."""
    return _cached(str(Path(model).resolve()) if model is not None else None, str(device), float(threshold))
