import numpy as np


def test_characterize_cnn_has_the_fit_columns(tiny_model_file, toy_spots):
    from laue_live.describe import characterize

    cut, _ = toy_spots
    fit = characterize(cut[:8], method="fit")
    cnn = characterize(cut[:8], method="cnn", model=tiny_model_file, device="cpu")
    assert list(cnn.columns) == list(fit.columns)
    for c in fit.columns:
        assert cnn[c].dtype == fit[c].dtype, c
    # measured on the cutout, not predicted: identical to the fit's
    np.testing.assert_array_equal(cnn["peak_intensity"], fit["peak_intensity"])
    np.testing.assert_array_equal(cnn["saturated"], fit["saturated"])
    assert cnn["converged"].all()


def test_descriptor_transforms_agree_with_spots():
    import pandas as pd

    from laue_live import area_from_star, area_star, pos_from_star, pos_star
    from laue_live.cnn import desc_from_table, table_from_desc

    d = np.array([-2.0, -1.1, -0.3, 0.0, 0.7, 1.5])
    area = np.array([1.0, 3.0, 10.0, 5 * np.pi, 30.0, 2.0])
    t = pd.DataFrame(
        {"sim": np.linspace(0, 1, 6), "d_row": d, "d_col": d[::-1], "asp": np.full(6, 0.5), "area": area}
    )
    desc = desc_from_table(t)
    np.testing.assert_allclose(desc[:, 1], pos_star(d), atol=1e-6)
    np.testing.assert_allclose(desc[:, 4], area_star(area), atol=1e-6)
    back = table_from_desc(desc, np.zeros((6, 32, 32), np.float32))
    np.testing.assert_allclose(back["d_row"], pos_from_star(desc[:, 1]), atol=1e-5)
    np.testing.assert_allclose(back["area"], area_from_star(desc[:, 4]), rtol=1e-5)
    inside = np.abs(d) < 1.1
    np.testing.assert_allclose(back["d_row"][inside], d[inside], atol=1e-5)


def test_default_model_is_shipped_and_loads():
    from laue_live.cnn import default_model_path, get_predictor

    path = default_model_path()  # a missing default model is a failure, never a skip
    p = get_predictor(None, "cpu")
    assert p.path == path
    df = p.predict(np.full((3, 32, 32), 1000.0, np.float32))
    assert len(df) == 3


def test_cli_train_catalog_without_catalog_source_is_a_clear_error(monkeypatch, tmp_path):
    import sys

    from typer.testing import CliRunner

    from laue_live.cli import app

    # make the lazy import fail the way it does before laue_live.catalog has CatalogCutoutSource
    monkeypatch.setitem(sys.modules, "laue_live.catalog", None)
    r = CliRunner().invoke(
        app, ["train", "--catalog", "http://127.0.0.1:1/api", "--out", str(tmp_path / "m.safetensors")]
    )
    assert r.exit_code == 2
    assert "CatalogCutoutSource" in r.output
