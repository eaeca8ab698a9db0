"""The spot CNN: network, inference, training and evaluation (science layer: torch/numpy/pandas only).

``get_predictor(model=None, device="auto").predict(cutouts)`` is what
``laue_live.characterize(cutouts, method="cnn")`` calls.
"""

from laue_live.cnn._architectures import DESIGNS, NetDesign, SpotNet, count_flops, make_network
from laue_live.cnn._augment import augment_batch, dihedral, shift
from laue_live.cnn._data import (
    TARGET_COLUMNS,
    ArraySource,
    CutoutSource,
    FrameCutoutSource,
    SimulatorCutoutSource,
    SpotSet,
    collect,
    resample_uniform,
)
from laue_live.cnn._descriptors import DESC_NAMES, cutout_columns, desc_from_table, good_mask, table_from_desc
from laue_live.cnn._io import MODEL_FORMAT, MODEL_FORMAT_VERSION, load_model, read_metadata, save_model
from laue_live.cnn._network import (
    ARCHITECTURES,
    Architecture,
    SpotCNN,
    fuse_batchnorm,
    int8_available,
    keras_parameter_count,
    quantize_int8,
)
from laue_live.cnn._normalise import NORMALISATIONS, normalise_numpy, normalise_torch
from laue_live.cnn._predictor import (
    DEFAULT_MODEL_NAME,
    Predictor,
    default_model_path,
    get_predictor,
    resolve_device,
)
from laue_live.cnn._hybrid import polish, start_from_desc
from laue_live.cnn._stream_data import SceneStream
from laue_live.cnn._train import TrainConfig, TrainResult, prepare_training_set, train
from laue_live.cnn._train_stream import SHIPPED_STREAM_CONFIG, StreamConfig, train_stream

__all__ = [
    "ARCHITECTURES",
    "Architecture",
    "ArraySource",
    "CutoutSource",
    "DEFAULT_MODEL_NAME",
    "DESC_NAMES",
    "DESIGNS",
    "NetDesign",
    "SHIPPED_STREAM_CONFIG",
    "SceneStream",
    "SpotNet",
    "StreamConfig",
    "count_flops",
    "make_network",
    "polish",
    "start_from_desc",
    "train_stream",
    "FrameCutoutSource",
    "MODEL_FORMAT",
    "MODEL_FORMAT_VERSION",
    "NORMALISATIONS",
    "Predictor",
    "SimulatorCutoutSource",
    "SpotCNN",
    "SpotSet",
    "TARGET_COLUMNS",
    "TrainConfig",
    "TrainResult",
    "augment_batch",
    "collect",
    "cutout_columns",
    "default_model_path",
    "desc_from_table",
    "dihedral",
    "fuse_batchnorm",
    "get_predictor",
    "good_mask",
    "int8_available",
    "keras_parameter_count",
    "quantize_int8",
    "load_model",
    "normalise_numpy",
    "normalise_torch",
    "prepare_training_set",
    "read_metadata",
    "resample_uniform",
    "resolve_device",
    "save_model",
    "shift",
    "table_from_desc",
    "train",
]
