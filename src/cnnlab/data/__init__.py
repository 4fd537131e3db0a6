"""cnnlab.data: datasets resident in memory as uint8 tensors, batched on-device preprocessing.

Loading: load_splits(DataConfig, seed) -> DataSplits (train / val / test ArrayDatasets).
Preprocessing on the training device: Normalizer (fitted on train only) and Augmenter.
"""
from .augment import Augmenter
from .config import AugmentConfig, DataConfig
from .dataset import ArrayDataset, DataSplits
from .download import download_url, safe_extract
from .errors import DataError
from .info import dataset_info
from .loader import load_splits
from .locate import cache_dir, find_data_dir
from .normalize import Normalizer

__all__ = [
    "ArrayDataset", "AugmentConfig", "Augmenter", "DataConfig", "DataError", "DataSplits", "Normalizer",
    "cache_dir", "dataset_info", "download_url", "find_data_dir", "load_splits", "safe_extract",
]
