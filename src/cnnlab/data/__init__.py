"""cnnlab.data: datasets resident in memory as uint8 tensors, batched on-device preprocessing.

Loading: load_splits(DataConfig, seed) -> DataSplits (train / val / test ArrayDatasets) of CIFAR-10/100,
an image folder (class folders or a pre-split train/ val/ test/ root) or Tiny-ImageNet-200; decoded
image folders are cached (decode_cache).
Preprocessing on the training device: Normalizer (fitted on train only) and Augmenter.
"""
from .augment import Augmenter
from .config import AugmentConfig, DataConfig
from .dataset import ArrayDataset, DataSplits
from .download import download_url, safe_extract
from .errors import DataError
from .folder import load_image_folder
from .info import dataset_info
from .loader import load_splits
from .locate import cache_dir, find_data_dir
from .normalize import Normalizer
from .tiny_imagenet import find_tiny_imagenet, load_tiny_imagenet

__all__ = [
    "ArrayDataset", "AugmentConfig", "Augmenter", "DataConfig", "DataError", "DataSplits", "Normalizer",
    "cache_dir", "dataset_info", "download_url", "find_data_dir", "find_tiny_imagenet", "load_image_folder",
    "load_splits", "load_tiny_imagenet", "safe_extract",
]
