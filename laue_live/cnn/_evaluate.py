"""Leave-one-dataset-out cross-validation (paper section 3): five models, each tested on its unseen set."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from laue_live.cnn._data import SpotSet, resample_uniform
from laue_live.cnn._io import save_model
from laue_live.cnn._metrics import comparison_table
from laue_live.cnn._predictor import Predictor
from laue_live.cnn._train import TrainConfig, train

__all__ = ["LodoResult", "evaluate", "leave_one_dataset_out"]

logger = logging.getLogger(__name__)


def evaluate(model: Predictor | str | Path, test: SpotSet, quantize: bool | None = None) -> pd.DataFrame:
    """Per-spot comparison (:func:`~laue_live.cnn._metrics.comparison_table`) of a model on ``test``.

    ``quantize`` as in :class:`Predictor` (default: int8 on the CPU, what ``method="cnn"`` uses).
    """
    pred = model if isinstance(model, Predictor) else Predictor(model, "auto", quantize=quantize)
    out = comparison_table(test.table, pred.predict(test.cutouts))
    out.insert(0, "dataset", test.name)
    if "real" in test.table:
        out["real"] = test.table["real"].to_numpy(bool)
    return out


@dataclass
class LodoResult:
    """Per-fold comparisons and loss histories of a leave-one-dataset-out run."""

    comparisons: dict[str, pd.DataFrame] = field(default_factory=dict)
    comparisons_fp32: dict[str, pd.DataFrame] = field(default_factory=dict)
    histories: dict[str, pd.DataFrame] = field(default_factory=dict)
    config: dict = field(default_factory=dict)

    @property
    def all(self) -> pd.DataFrame:
        """Every test spot of every fold, one table."""
        return pd.concat(list(self.comparisons.values()), ignore_index=True)


def leave_one_dataset_out(
    sets: Sequence[SpotSet],
    out_dir: str | Path,
    *,
    config: TrainConfig | None = None,
    device: str = "auto",
    progress: bool = True,
    only: Sequence[str] | None = None,
) -> LodoResult:
    """Train one model per held-out set on the union of the others (each resampled), test unresampled.

    Resumable: a fold whose model, history and comparison already exist in ``out_dir`` is loaded,
    not retrained (delete the files to retrain). Files per fold ``Di``: ``lodo_Di.safetensors``,
    ``lodo_Di_history.csv``, ``lodo_Di_test.csv``.
    """
    config = config or TrainConfig()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    res = LodoResult(config=config.to_dict())
    for i, test in enumerate(sets):
        if only is not None and test.name not in only:
            continue
        mpath = out_dir / f"lodo_{test.name}.safetensors"
        hpath = out_dir / f"lodo_{test.name}_history.csv"
        cpath = out_dir / f"lodo_{test.name}_test.csv"
        fpath = out_dir / f"lodo_{test.name}_test_fp32.csv"
        if mpath.is_file() and hpath.is_file() and cpath.is_file():
            res.histories[test.name] = pd.read_csv(hpath)
            res.comparisons[test.name] = pd.read_csv(cpath)
            if not fpath.is_file():
                evaluate(mpath, test, quantize=False).to_csv(fpath, index=False)
            res.comparisons_fp32[test.name] = pd.read_csv(fpath)
            logger.info("fold %s: reusing %s", test.name, mpath)
            continue
        train_sets = [s for j, s in enumerate(sets) if j != i]
        logger.info("fold %s: training on %s", test.name, [s.name for s in train_sets])
        r = train(
            train_sets, val=test, config=TrainConfig(**{**config.__dict__}), device=device, progress=progress
        )
        save_model(
            mpath,
            r.model,
            calibration=r.calibration,
            info={**r.info(), "version": f"lodo-{test.name}", "test_set": test.name},
        )
        r.history.to_csv(hpath, index=False)
        cmp = evaluate(mpath, test)
        cmp.to_csv(cpath, index=False)
        res.comparisons_fp32[test.name] = evaluate(mpath, test, quantize=False)
        res.comparisons_fp32[test.name].to_csv(fpath, index=False)
        res.histories[test.name], res.comparisons[test.name] = r.history, cmp
    (out_dir / "lodo_config.json").write_text(json.dumps(res.config, indent=1))
    return res


def resampled_sim(sets: Sequence[SpotSet], config: TrainConfig | None = None) -> dict[str, np.ndarray]:
    """Sim of each set after the training resampling (for the paper's Figure 4, bottom row)."""
    config = config or TrainConfig()
    rng = np.random.default_rng(config.seed)
    out = {}
    for s in sets:
        sim = s.valid().table["sim"].to_numpy()
        out[s.name] = sim[resample_uniform(sim, bins=config.bins, per_bin=config.per_bin, rng=rng)]
    return out
