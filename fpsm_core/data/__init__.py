"""Data for training and evaluation: label-table readers, splits, transforms and loaders.

``records`` reads CXR-LT / MIMIC-CXR-JPG, NIH ChestX-ray14, DADAM output, MURA and generic CSVs into
a :class:`RecordSet`; ``split`` divides it by patient (default) or at random; ``transforms`` decodes,
caches and augments images with the inference preprocessing; ``dataset`` feeds them to torch.
"""

from fpsm_core.data.dataset import (
    EpochSampler,
    RadiographDataset,
    class_balanced_weights,
    collate,
    make_loader,
    normalise_batch,
    warm_cache,
)
from fpsm_core.data.records import (
    FORMATS,
    DatasetError,
    RecordSet,
    concat_records,
    detect_format,
    read_cxrlt,
    read_dataset,
    read_generic,
    read_mura,
    read_nih,
)
from fpsm_core.data.split import SPLITS, split_records
from fpsm_core.data.transforms import AugmentConfig, ImageCache, augment, decode_unit, load_square

__all__ = [
    "FORMATS",
    "SPLITS",
    "AugmentConfig",
    "DatasetError",
    "EpochSampler",
    "ImageCache",
    "RadiographDataset",
    "RecordSet",
    "augment",
    "class_balanced_weights",
    "collate",
    "concat_records",
    "decode_unit",
    "detect_format",
    "load_square",
    "make_loader",
    "normalise_batch",
    "read_cxrlt",
    "read_dataset",
    "read_generic",
    "read_mura",
    "read_nih",
    "split_records",
    "warm_cache",
]
