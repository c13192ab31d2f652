"""Images in: datasets from folders and archives, robust decoding, protocols and user splits, augmentation."""
from hashseek.data.augment import SeedAugment, augment_copy, expand_offline
from hashseek.data.datasets import ArchiveDataset, FolderDataset, ImageDataset, open_images
from hashseek.data.images import ImageDecodeError, load_image
from hashseek.data.named import NAMED_DATASETS, load_dataset
from hashseek.data.protocols import PROTOCOLS, Protocol, get_protocol, make_protocol
from hashseek.data.sources import SourceCheck, check_source, open_source
from hashseek.data.splits import SplitSettings, split_lines, split_source

__all__ = ["ArchiveDataset", "FolderDataset", "ImageDataset", "ImageDecodeError", "NAMED_DATASETS", "PROTOCOLS",
           "Protocol", "SeedAugment", "SourceCheck", "SplitSettings", "augment_copy", "check_source",
           "expand_offline", "get_protocol", "load_dataset", "load_image", "make_protocol", "open_images",
           "open_source", "split_lines", "split_source"]
