"""Peak search in torch, batched over frames: the same peaks as :func:`laue_live.spots.find_peaks`.

Every step of the CPU recipe is ported as a whole-tensor operation, so that it runs on any torch
device with no per-spot Python:

1. background and noise per block: sums and sums of squares of every other row (float64, exact
   for integer frames), mean and variance, then NaN-aware 3 x 3 medians over blocks;
2. candidates ``frame > background + threshold * noise`` compared in block layout, minus masked pixels;
3. 8-connected components on the *sparse* set of masked pixels: neighbours are found through a map
   of the masked pixels' positions (one gather per neighbour direction), and labels converge by
   min-label hooking with pointer jumping (a union-find that needs O(log size) rounds, not a
   propagation over the whole frame per step);
4. size filter, brightest pixel per component (ties to the lowest flat index) by two scatter
   reductions;
5. suppression of candidates within ``merge_radius`` of a brighter one (the CPU rule, which is not
   greedy), by looking up every offset of the disk in the sorted candidate keys;
6. order per frame: decreasing value, ties by flat index.

Host synchronisations: on CUDA the host waits for the device only where a size is data-dependent:
the number of masked pixels, of neighbour edges, of component roots and of the peaks that survive
the suppression (one ``nonzero`` each), plus one convergence test every ``sync_every`` rounds of
the labelling. Everything else (counts, block sizes, the disk of offsets) is sized from what the
host already knows, so that no ``bincount``, boolean mask index or scalar upload syncs in between.

Exactness: for integer frames the block sums and sums of squares are exact in float64 whatever the
summation order (integers below 2**53), and the rest is the same sequence of correctly rounded
float64 operations as numpy's, so the background, the noise, the candidates and therefore the peaks
are bit-identical to the numpy path. Float frames (dark-subtracted, flat-fielded) may differ where
a pixel lies within rounding (~1e-12 relative) of the threshold.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from laue_live._rules import SATURATION

__all__ = ["PeakBatch", "find_peaks_torch", "frames_to_float", "peaks_from_float", "uint16_to_float_"]

log = logging.getLogger(__name__)

# forward half of the 8-neighbourhood: every undirected edge of the pixel graph appears once
_FORWARD_NEIGHBOURS = ((0, 1), (1, -1), (1, 0), (1, 1))


@dataclass
class PeakBatch:
    """Peaks of a batch of frames, all tensors on the device of the frames.

    Attributes
    ----------
    frame
        int64 (N,): index of the frame within the batch; frames appear in order.
    row, col
        int64 (N,): 0-based position of the brightest pixel of each spot.
    value
        float32 (N,): the frame value at that pixel, ADU.
    counts
        int64 (B,): number of peaks of each frame (``frame`` is sorted, so ``counts`` splits it).
    """

    frame: torch.Tensor
    row: torch.Tensor
    col: torch.Tensor
    value: torch.Tensor
    counts: torch.Tensor

    def __len__(self) -> int:
        return int(self.frame.numel())


def frames_to_float(frames: torch.Tensor, block: int) -> torch.Tensor:
    """Convert a (B, H, W) batch to float32, padded at the bottom/right by edge replication.

    The padding makes both sides multiples of ``block`` (as the CPU background does); it is written
    in the same pass as the dtype conversion, so the frame is read once.
    """
    b, h, w = frames.shape
    hp, wp = h + (-h) % block, w + (-w) % block
    out = torch.empty((b, hp, wp), dtype=torch.float32, device=frames.device)
    if frames.dtype == torch.uint16 and frames.device.type != "cpu":
        uint16_to_float_(out[:, :h, :w], frames)
    else:
        out[:, :h, :w].copy_(frames)
    if hp > h:
        out[:, h:, :w] = out[:, h - 1 : h, :w]
    if wp > w:
        out[:, :, w:] = out[:, :, w - 1 : w]
    return out


def uint16_to_float_(dst: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
    """Write uint16 ``src`` into float32 ``dst`` (same shape) without any unsigned 16-bit kernel.

    torch's uint16 is a "shell" dtype outside the CPU (few kernels, conversion included on some
    versions), so the words are read as int16 (a free view) and ``-32768..-1`` is mapped back to
    ``32768..65535`` by ``remainder`` in float32: exact, no int32 temporary, one extra pass.
    """
    dst.copy_(src.view(torch.int16))
    return dst.remainder_(65536.0)


def _block_stats(xp: torch.Tensor, valid: torch.Tensor | None, h: int, w: int, block: int,
                 min_noise: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Background and noise per block (B, hb, wb), float64: :func:`laue_live.spots.estimate_background`.

    Every other row (0, 2, ...) of the unpadded frame; partial blocks use their own pixels.
    """
    b = xp.shape[0]
    half = block // 2
    x = xp[:, 0:h:2, :w].to(torch.float64)
    if valid is not None:
        v = valid[:, 0:h:2, :].to(torch.float64)
        x = x * v
    hs = x.shape[1]
    hb, wb = -(-hs // half), -(-w // block)
    pad = (0, wb * block - w, 0, hb * half - hs)
    if valid is None:
        v = torch.ones((1, hs, w), dtype=torch.float64, device=xp.device)
    n = F.pad(v, pad).view(v.shape[0], hb, half, wb, block).sum(dim=(2, 4))
    s1 = F.pad(x, pad).view(b, hb, half, wb, block).sum(dim=(2, 4))
    s2 = F.pad(x * x, pad).view(b, hb, half, wb, block).sum(dim=(2, 4))
    enough = n >= max(8.0, 0.25 * half * block)
    nan = torch.tensor(float("nan"), dtype=torch.float64, device=xp.device)
    mean = torch.where(enough, s1 / n, nan)
    var = torch.where(enough, s2 / n - mean * mean, nan)
    bg = _median3x3(mean)
    noise = torch.clamp(torch.sqrt(torch.clamp(_median3x3(var), min=0.0)), min=float(min_noise))
    return bg, torch.where(torch.isnan(bg), nan, noise)


def _median3x3(a: torch.Tensor) -> torch.Tensor:
    """NaN-aware median over each block's 3 x 3 neighbourhood (B, hb, wb), as the numpy path."""
    b, hb, wb = a.shape
    p = F.pad(a, (1, 1, 1, 1), value=float("nan"))
    st = torch.stack([p[:, i:i + hb, j:j + wb] for i in range(3) for j in range(3)])
    k = (~torch.isnan(st)).sum(dim=0)
    st = torch.sort(st, dim=0).values  # NaN sort last
    lo = st.gather(0, (torch.clamp(k - 1, min=0) // 2)[None])[0]
    hi = st.gather(0, torch.clamp(k // 2, max=8)[None])[0]
    return torch.where(k > 0, 0.5 * (lo + hi), torch.full_like(lo, float("nan")))


def _label(idx: torch.Tensor, h: int, w: int, bsz: int, sync_every: int = 4) -> torch.Tensor:
    """Connected-component root of every masked pixel (8-connectivity).

    Parameters
    ----------
    idx
        int64 (N,): sorted global flat indices ``b*h*w + r*w + c`` of the masked pixels.
    h, w, bsz
        Frame size, px, and number of frames of the batch.
    sync_every
        Hooking rounds between two convergence tests (each test is one host synchronisation);
        the two real BM32 frames converge in 4 rounds, so one test usually suffices. Extra rounds
        on a converged labelling change nothing and cost a few small gathers.

    Returns
    -------
    torch.Tensor
        int64 (N,): for each pixel, the position (in ``idx``) of the first pixel of its component.
    """
    n = idx.numel()
    hw = h * w
    fr, rem = idx // hw, idx % hw
    r, c = rem // w, rem % w
    # position of every masked pixel in a padded (B, h + 2, w + 2) map, -1 elsewhere: a neighbour
    # is then one gather away (no bounds checks: the 1-px border is always -1). Sized from the batch
    # (not from the last masked pixel's frame, which would cost a sync); int32 halves its memset.
    wp = w + 2
    pdt = torch.int32 if n < 2**31 else torch.int64
    flat = torch.full((bsz * (h + 2) * wp,), -1, dtype=pdt, device=idx.device)
    at = fr * ((h + 2) * wp) + (r + 1) * wp + (c + 1)
    flat[at] = torch.arange(n, dtype=pdt, device=idx.device)
    nb = flat[torch.stack([at + (dr * wp + dc) for dr, dc in _FORWARD_NEIGHBOURS])]  # (4, N)
    del flat
    # every edge in one nonzero (one sync instead of eight), in the same order as four separate ones
    e = torch.nonzero(nb >= 0)
    ei, ej = e[:, 1], nb[e[:, 0], e[:, 1]].long()
    lab = torch.arange(n, device=idx.device)
    if ei.numel() == 0:
        return lab
    while True:
        for _ in range(sync_every):
            li, lj = lab[ei], lab[ej]
            # hook the larger label onto the smaller one; labels only ever decrease
            lab.scatter_reduce_(0, torch.maximum(li, lj), torch.minimum(li, lj), reduce="amin")
            lab = lab[lab]
            lab = lab[lab]
        # converged when every edge joins equal labels and every label is a root
        if bool(((lab[ei] == lab[ej]).all() & (lab[lab] == lab).all()).item()):
            return lab


def _suppress(
    key: torch.Tensor, r: torch.Tensor, c: torch.Tensor, h: int, w: int, radius: float
) -> torch.Tensor:
    """Keep mask: drop every candidate with a brighter one (earlier in ``key``'s order) within ``radius``."""
    k = key.numel()
    dr, dc = _disk_offsets(float(radius), key.device)
    skey, perm = torch.sort(key)
    rr = r[:, None] + dr[None]
    cc = c[:, None] + dc[None]
    ok = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
    target = (key - r * w - c)[:, None] + rr * w + cc
    pos = torch.searchsorted(skey, target).clamp_(max=k - 1)
    ok &= skey[pos] == target
    brighter = ok & (perm[pos] < torch.arange(k, device=key.device)[:, None])
    return ~brighter.any(dim=1)


@functools.lru_cache(maxsize=16)
def _disk_offsets(radius: float, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column offsets of the disk ``0 < dr^2 + dc^2 <= radius^2`` on ``device`` (made once).

    Built on the host: masking a device tensor would be a data-dependent size (a sync per batch).
    """
    rad = int(radius)
    d = torch.arange(-rad, rad + 1)
    dr, dc = torch.meshgrid(d, d, indexing="ij")
    disk = ((dr * dr + dc * dc) <= radius * radius) & ((dr != 0) | (dc != 0))
    return dr[disk].to(device), dc[disk].to(device)


def find_peaks_torch(
    frames: torch.Tensor,
    *,
    threshold: float = 7.0,
    block: int = 16,
    min_pixels: int = 2,
    merge_radius: float = 4.0,
    min_noise: float = 1.0,
    saturation: float | None = SATURATION,
    mask: torch.Tensor | None = None,
) -> PeakBatch:
    """Find the initial peak ``s`` of every spot of a batch of frames, on the frames' device.

    Same recipe and parameters as :func:`laue_live.spots.find_peaks` (see the module docstring for
    how each step maps to tensor operations); the frames must already be validated.

    Parameters
    ----------
    frames
        (B, H, W) or (H, W) tensor, any real dtype (uint16 typical), ADU.
    threshold
        Height above the local background, in local noise sigmas.
    block
        Background block side, px (even).
    min_pixels
        Smallest component kept, px.
    merge_radius
        Candidates within this distance of a brighter one are dropped, px; 0 disables.
    min_noise
        Floor of the local noise, ADU.
    saturation
        Frames whose every pixel is at or above this value hold no peaks; None disables.
    mask
        Optional bool (B, H, W) or (H, W) tensor on the frames' device, True for masked pixels.

    Returns
    -------
    PeakBatch
        Peaks ordered by frame, then decreasing value, then flat index.
    """
    if frames.ndim == 2:
        frames = frames[None]
    if mask is not None and mask.ndim == 2:
        mask = mask[None].expand(frames.shape[0], -1, -1)
    _, h, w = frames.shape
    xp = frames_to_float(frames, block)
    return peaks_from_float(
        xp,
        h,
        w,
        threshold=threshold,
        block=block,
        min_pixels=min_pixels,
        merge_radius=merge_radius,
        min_noise=min_noise,
        saturation=saturation,
        mask=mask,
    )


def peaks_from_float(
    xp: torch.Tensor,
    h: int,
    w: int,
    *,
    threshold: float = 7.0,
    block: int = 16,
    min_pixels: int = 2,
    merge_radius: float = 4.0,
    min_noise: float = 1.0,
    saturation: float | None = SATURATION,
    mask: torch.Tensor | None = None,
) -> PeakBatch:
    """:func:`find_peaks_torch` on frames already converted by :func:`frames_to_float`.

    Parameters
    ----------
    xp
        (B, Hp, Wp) float32 frames padded to multiples of ``block``.
    h, w
        Size of the frames before padding, px.
    """
    bsz = xp.shape[0]
    dev = xp.device
    valid = None if mask is None else ~mask
    bg, noise = _block_stats(xp, valid, h, w, block, min_noise)
    hb, wb = bg.shape[1:]
    # float64 level, as numpy's (a Python scalar: torch.tensor(x, device=cuda) would be a blocking
    # upload per batch); compared with the float32 pixels in float64, exactly
    level = torch.nan_to_num(bg + float(threshold) * noise, nan=float("inf"))
    # xp is padded to whole blocks: (hb * block, wb * block), the statistics' grid
    cand = xp.view(bsz, hb, block, wb, block) > level[:, :, None, :, None]
    mask = cand.view(bsz, hb * block, wb * block)[:, :h, :w]
    if valid is not None:
        mask = mask & valid
    if saturation is not None:
        # an all-saturated frame holds no spots (no host round trip: the mask is cleared)
        full = xp[:, :h, :w].amin(dim=(1, 2)) >= saturation
        mask = mask & ~full[:, None, None]
    idx = torch.nonzero(mask.reshape(-1)).squeeze(1)
    if idx.numel() == 0:
        return _empty(bsz, dev)
    lab = _label(idx, h, w, bsz)
    n = idx.numel()
    hw = h * w
    fi, rem = idx // hw, idx % hw
    val = xp[fi, rem // w, rem % w]
    if min_pixels > 1:
        # scatter_add, not bincount: CUDA's bincount reads max(lab) back to size its output (a sync)
        size = torch.zeros(n, dtype=torch.int64, device=dev).scatter_add_(0, lab, torch.ones_like(lab))
        keep = size[lab] >= min_pixels
    else:
        keep = torch.ones(n, dtype=torch.bool, device=dev)
    vmax = torch.full((n,), float("-inf"), device=dev).scatter_reduce_(0, lab, val, reduce="amax")
    big = torch.iinfo(torch.int64).max
    cand = torch.where((val == vmax[lab]) & keep, idx, big)
    best = torch.full((n,), big, dtype=torch.int64, device=dev).scatter_reduce_(0, lab, cand, reduce="amin")
    roots = torch.nonzero((lab == torch.arange(n, device=dev)) & (best != big)).squeeze(1)
    if roots.numel() == 0:
        return _empty(bsz, dev)
    key = best[roots]
    value = vmax[roots]
    # order: frame, then decreasing value, then flat index (successive stable sorts)
    o = torch.argsort(key, stable=True)
    o = o[torch.argsort(-value[o], stable=True)]
    o = o[torch.argsort(key[o] // hw, stable=True)]
    key, value = key[o], value[o]
    fr, rem = key // hw, key % hw
    r, c = rem // w, rem % w
    if merge_radius > 0 and key.numel() > 1:
        k = torch.nonzero(_suppress(key, r, c, h, w, merge_radius)).squeeze(1)  # one sync, not five
        value, fr, r, c = value[k], fr[k], r[k], c[k]
    counts = torch.zeros(bsz, dtype=torch.int64, device=dev).scatter_add_(0, fr, torch.ones_like(fr))
    return PeakBatch(frame=fr, row=r, col=c, value=value, counts=counts)


def _empty(bsz: int, dev: torch.device) -> PeakBatch:
    z = torch.zeros(0, dtype=torch.int64, device=dev)
    return PeakBatch(
        frame=z,
        row=z,
        col=z,
        value=torch.zeros(0, device=dev),
        counts=torch.zeros(bsz, dtype=torch.int64, device=dev),
    )
