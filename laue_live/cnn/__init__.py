"""The spot CNN: network, inference, training and evaluation (science layer: torch/numpy/pandas only).

``get_predictor(model=None, device="auto").predict(cutouts)`` is what
``laue_live.characterize(cutouts, method="cnn")`` calls. Above :mod:`laue_live.spots` (the exact
fit is the ground truth of training); never imports the simulator (its training sources are in
:mod:`laue_live.training`).
"""

from laue_live.cnn._architectures import DESIGNS, NetDesign, SpotNet, count_flops, make_network
from laue_live.cnn._augment import augment_batch, dihedral, shift
from laue_live.cnn._data import (
    TARGET_COLUMNS,
    ArraySource,
    CutoutSource,
    FrameCutoutSource,
    SpotSet,
    collect,
    resample_uniform,
)
from laue_live.cnn._descriptors import (
    DESC_NAMES,
    WIDTH_LOG_RANGE,
    cnn_columns,
    desc_from_table,
    table_from_desc,
    width_from_star,
    width_star,
)
from laue_live.cnn._evaluate import leave_one_dataset_out, resampled_sim
from laue_live.cnn._hybrid import polish, polish_valid, start_from_desc
from laue_live.cnn._io import (
    CALIBRATION_KEY,
    MODEL_FORMAT,
    MODEL_FORMAT_VERSION,
    load_model,
    read_metadata,
    save_model,
)
from laue_live.cnn._network import (
    ARCHITECTURES,
    Architecture,
    SpotCNN,
    conv_trunk_and_head,
    fuse_batchnorm,
    int8_available,
    keras_parameter_count,
    quantize_int8,
)
from laue_live.cnn._normalise import NORMALISATIONS, normalise_numpy, normalise_torch
from laue_live.cnn._pareto import (
    Method,
    meets_all,
    method_label,
    pareto_table,
    recommend_polish,
    standard_methods,
    time_methods,
)
from laue_live.cnn._predictor import (
    DEFAULT_MODEL_NAME,
    Predictor,
    default_model_path,
    get_predictor,
)
from laue_live.cnn._report import plot_loss_curves, score_tables, write_model_card, write_report
from laue_live.cnn._stream_report import (
    machine_description,
    plot_stream_curves,
    real_frame_table,
    write_stream_model_card,
    write_stream_report,
)
from laue_live.cnn._train import TrainConfig, TrainResult, prepare_training_set, train

__all__ = [
    "CALIBRATION_KEY",
    "Method",
    "machine_description",
    "meets_all",
    "method_label",
    "pareto_table",
    "plot_stream_curves",
    "real_frame_table",
    "recommend_polish",
    "standard_methods",
    "time_methods",
    "write_stream_model_card",
    "write_stream_report",
    "plot_loss_curves",
    "score_tables",
    "write_model_card",
    "write_report",
    "leave_one_dataset_out",
    "resampled_sim",
    "ARCHITECTURES",
    "Architecture",
    "ArraySource",
    "CutoutSource",
    "DEFAULT_MODEL_NAME",
    "DESC_NAMES",
    "DESIGNS",
    "NetDesign",
    "SpotNet",
    "count_flops",
    "make_network",
    "polish",
    "polish_valid",
    "start_from_desc",
    "WIDTH_LOG_RANGE",
    "width_from_star",
    "width_star",
    "FrameCutoutSource",
    "MODEL_FORMAT",
    "MODEL_FORMAT_VERSION",
    "NORMALISATIONS",
    "Predictor",
    "SpotCNN",
    "SpotSet",
    "TARGET_COLUMNS",
    "TrainConfig",
    "TrainResult",
    "augment_batch",
    "collect",
    "conv_trunk_and_head",
    "cnn_columns",
    "default_model_path",
    "desc_from_table",
    "dihedral",
    "fuse_batchnorm",
    "get_predictor",
    "int8_available",
    "keras_parameter_count",
    "quantize_int8",
    "load_model",
    "normalise_numpy",
    "normalise_torch",
    "prepare_training_set",
    "read_metadata",
    "resample_uniform",
    "save_model",
    "shift",
    "table_from_desc",
    "train",
]
