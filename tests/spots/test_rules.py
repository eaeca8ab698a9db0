"""The paper's rules (laue_live._rules) at their edges and on torch tensors, as the pipeline uses them.

Written against the mutants of ``_rules.py`` that the descriptor tests (numpy, values inside the
ranges) cannot see: the clips, the cuts, near-zero norms, tensors keeping their dtype and device.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from laue_live._rules import (
    AREA_CLIP,
    area_from_star,
    area_star,
    cosine_similarity,
    pos_from_star,
    pos_star,
    sim0_from_fit,
    sim0_from_sim,
    sim0_separable,
    sim_from_sim0,
)

TRANSFORMS = (sim_from_sim0, sim0_from_sim, pos_star, pos_from_star, area_star, area_from_star)


def test_transforms_keep_a_tensors_dtype_and_agree_with_numpy():
    x = np.array([-2.0, -1.1, -0.3, 0.0, 0.5, 0.85, 0.9, 1.0, 1.2, 7.0, 20.0])
    for f in TRANSFORMS:
        ref = np.asarray(f(x))
        assert ref.dtype == np.float64, f.__name__
        for dtype in (torch.float32, torch.float64):
            got = f(torch.as_tensor(x, dtype=dtype))
            assert isinstance(got, torch.Tensor) and got.dtype == dtype, (f.__name__, dtype)
            np.testing.assert_allclose(got.numpy(), ref, rtol=1e-6, atol=1e-6, err_msg=f.__name__)
        # integers and lists are computed in float64
        assert np.asarray(f([0, 1, 2])).dtype == np.float64, f.__name__
        np.testing.assert_array_equal(np.asarray(f([0, 1, 2])), np.asarray(f(np.array([0.0, 1.0, 2.0]))))


def test_transform_values_at_their_edges():
    np.testing.assert_allclose(sim_from_sim0(np.array([0.85, 0.925, 1.0, 1.2, np.nan, -1.0])),
                               [0.0, 0.5, 1.0, 1.0, 0.0, 0.0])  # clipped to [0, 1], NaN -> 0
    np.testing.assert_allclose(sim0_from_sim(np.array([0.0, 0.5, 1.0])), [0.85, 0.925, 1.0])
    np.testing.assert_allclose(area_star(np.array([-1.0, 0.0, AREA_CLIP / 2, AREA_CLIP, 100.0])),
                               [0.0, 0.0, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(area_from_star(np.array([0.0, 0.5, 1.0])), [0.0, AREA_CLIP / 2, AREA_CLIP])
    np.testing.assert_allclose(pos_from_star(np.array([0.0, 0.5, 1.0])), [-1.1, 0.0, 1.1])


def test_cosine_similarity_of_tiny_and_zero_vectors():
    a = np.full((3, 4, 4), 1e-3)
    b = a.copy()
    b[1] *= -1
    b[2] = 0.0
    got = cosine_similarity(a, b)  # norms 1e-5: far below 1, still a similarity
    np.testing.assert_allclose(got[:2], [1.0, -1.0], rtol=1e-12)
    assert math.isnan(got[2])  # a zero vector has no direction


def _model(s: int, mr: float, mc: float, sr: float, sc: float, a: float, beta: float) -> np.ndarray:
    x = np.arange(s) - s // 2
    return beta + a * np.exp(-0.5 * ((x - mr) / sr) ** 2)[:, None] * np.exp(-0.5 * ((x - mc) / sc) ** 2)[None]


def test_separable_sim0_on_odd_sizes_tiny_signals_and_anti_correlation():
    rng = np.random.default_rng(3)
    params = (0.4, -0.7, 1.2, 1.6, 5000.0, 1000.0)
    for s in (31, 32):
        model = _model(s, *params)
        cut = rng.poisson(model).astype(np.float64)[None]
        ref = sim0_from_fit(cut, model[None], np.array([params[-1]]))
        got, inten = sim0_separable(cut, *(np.array([p]) for p in params))
        np.testing.assert_allclose(got, ref, rtol=1e-10)  # the default is the background variant
        np.testing.assert_allclose(inten, (cut - params[-1]).sum(), rtol=1e-12)
    # a spot of 1e-3 ADU: tiny norms, the same cosine
    tiny = _model(32, 0.4, -0.7, 1.2, 1.6, 1e-3, 0.0)[None]
    got, _ = sim0_separable(tiny, *(np.array([p]) for p in (0.4, -0.7, 1.2, 1.6, 1e-3, 0.0)))
    np.testing.assert_allclose(got, 1.0, rtol=1e-12)
    # a dip where the model has a peak: -1, never below
    dip = 2 * params[-1] - _model(32, *params)[None]  # beta - A u v^T
    got, _ = sim0_separable(dip, *(np.array([p]) for p in params))
    assert -1.0 <= got[0] < -0.999999
    flat = np.full((1, 32, 32), 1000.0)
    got, _ = sim0_separable(flat, *(np.array([p]) for p in params))
    assert math.isnan(got[0])  # nothing above the background: no similarity
