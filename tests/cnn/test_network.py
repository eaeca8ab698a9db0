import numpy as np
import torch

from laue_live.cnn import (
    ARCHITECTURES,
    SpotCNN,
    fuse_batchnorm,
    keras_parameter_count,
    normalise_numpy,
    normalise_torch,
)


def test_paper_parameter_count_matches_keras_counting():
    assert keras_parameter_count(SpotCNN(ARCHITECTURES["paper"])) == 347_057


def test_lean_variant_is_smaller():
    assert keras_parameter_count(SpotCNN(ARCHITECTURES["lean"])) == 150_361


def test_output_shape_and_range():
    torch.manual_seed(0)
    for arch in ARCHITECTURES.values():
        y = SpotCNN(arch).eval()(torch.rand(7, 1, 32, 32))
        assert y.shape == (7, 5)
        assert ((y >= 0) & (y <= 1)).all()


def test_fused_batchnorm_computes_the_same_function():
    torch.manual_seed(0)
    m = SpotCNN(ARCHITECTURES["lean"])
    # give the BN layers non-trivial statistics
    m.train()
    for _ in range(3):
        m(torch.rand(16, 1, 32, 32) * 3)
    m.eval()
    x = torch.rand(9, 1, 32, 32)
    with torch.no_grad():
        np.testing.assert_allclose(fuse_batchnorm(m)(x).numpy(), m(x).numpy(), atol=1e-5)


def test_minmax_normalisation_numpy_and_torch_agree():
    rng = np.random.default_rng(0)
    x = rng.uniform(900, 5000, (4, 32, 32)).astype(np.float32)
    x[1] = 1234.0  # flat cutout -> zeros
    a = normalise_numpy(x)
    b = normalise_torch(torch.as_tensor(x)).numpy()
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert a[0].min() == 0 and a[0].max() == 1
    assert (a[1] == 0).all()
    # invariant to gain and pedestal
    np.testing.assert_allclose(normalise_numpy(3 * x[0] + 77)[None], a[:1], atol=1e-5)
