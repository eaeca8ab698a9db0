import numpy as np
import pytest
import torch

from laue_live.cnn import augment_batch, dihedral, shift
from laue_live.cnn._data import resample_uniform


def _spot(dr, dc, sr=1.0, sc=2.0, size=32):
    r = np.arange(size)[:, None] - 16 - dr
    c = np.arange(size)[None, :] - 16 - dc
    return np.exp(-0.5 * ((r / sr) ** 2 + (c / sc) ** 2))


def _centroid(img):
    w = img / img.sum()
    r, c = np.indices(img.shape)
    return (w * r).sum() - 16, (w * c).sum() - 16


def _second_moments(img, dr, dc):
    w = img / img.sum()
    r, c = np.indices(img.shape)
    return (w * (r - 16 - dr) ** 2).sum(), (w * (c - 16 - dc) ** 2).sum()


@pytest.mark.parametrize("k", [0, 1, 2, 3])
@pytest.mark.parametrize("flip", [False, True])
def test_dihedral_moves_offsets_with_the_spot(k, flip):
    dr, dc = 0.3, -0.45
    x = torch.as_tensor(_spot(dr, dc))[None]
    y, r, c = dihedral(x, torch.tensor([dr]), torch.tensor([dc]), k, flip)
    cr, cc = _centroid(y[0].numpy())
    assert abs(cr - float(r[0])) < 1e-3 and abs(cc - float(c[0])) < 1e-3
    # the sigma order follows the rotation: odd quarter turns swap the wide axis
    vr, vc = _second_moments(y[0].numpy(), float(r[0]), float(c[0]))
    assert (vr < vc) == (k % 2 == 0)


def test_dihedral_identity_and_exact_quarter_turn():
    x = torch.rand(2, 32, 32)
    y, _, _ = dihedral(x, torch.zeros(2), torch.zeros(2), 0, False)
    assert torch.equal(y, x)
    y, _, _ = dihedral(x, torch.zeros(2), torch.zeros(2), 1, False)
    # about pixel 16: new[16 + a, 16 + b] = old[16 + b, 16 - a]
    assert torch.equal(y[:, 16 + 3, 16 + 5], x[:, 16 + 5, 16 - 3])


def test_shift_moves_offsets():
    dr, dc = 0.2, 0.1
    x = torch.as_tensor(_spot(dr, dc))[None]
    y, r, c = shift(x, torch.tensor([dr]), torch.tensor([dc]), 1, -1, max_shift=1)
    cr, cc = _centroid(y[0].numpy())
    assert abs(float(r[0]) - 1.2) < 1e-6 and abs(float(c[0]) + 0.9) < 1e-6
    assert abs(cr - 1.2) < 1e-3 and abs(cc + 0.9) < 1e-3


def test_augment_batch_consistent_and_seeded():
    rng = np.random.default_rng(0)
    dr, dc = rng.uniform(-0.5, 0.5, 40), rng.uniform(-0.5, 0.5, 40)
    x = torch.as_tensor(np.stack([_spot(a, b) for a, b in zip(dr, dc, strict=True)]))
    out = [
        augment_batch(x, torch.as_tensor(dr), torch.as_tensor(dc), torch.Generator().manual_seed(3))
        for _ in range(2)
    ]
    for a, b in zip(out[0], out[1], strict=True):
        assert torch.equal(a, b)
    y, r, c = out[0]
    for i in range(40):
        cr, cc = _centroid(y[i].numpy())
        assert abs(cr - float(r[i])) < 1e-2 and abs(cc - float(c[i])) < 1e-2


def test_resample_uniform_caps_each_bin():
    rng = np.random.default_rng(0)
    sim = np.concatenate([np.zeros(5000), rng.uniform(0, 1, 3000)])
    idx = resample_uniform(sim, bins=12, per_bin=200, rng=rng)
    counts = np.bincount(np.clip((sim[idx] * 12).astype(int), 0, 11), minlength=12)
    assert counts.max() == 200
    assert len(np.unique(idx)) == len(idx)
