"""A dataset of seed-augmented copies, so frozen-feature training can use the augmentation recipe.

Copy ``i`` of image ``j`` is ``augment_copy(image, j, i, seed)``: every copy is determined by
the seed alone, so its features can be cached and regenerated in any order.
"""
from __future__ import annotations

import json

from PIL import Image

from hashseek.data.augment import SeedAugment, augment_copy
from hashseek.data.datasets import ImageDataset
from hashseek.data.images import load_image


class AugmentedDataset(ImageDataset):
    """``copies`` augmented versions of each of ``ids``; ids are ``'<id>@aug<i>'``, labels those of the source."""

    def __init__(self, base: ImageDataset, ids: list[str], copies: int, seed: int = 0,
                 augment: SeedAugment | None = None, decode_size: int = 512):
        self.base = base
        self.copies = copies
        self.seed = seed
        self.augment = augment or SeedAugment()
        self.decode_size = decode_size
        self._source_index = {image_id: n for n, image_id in enumerate(ids)}
        aug_ids = [f"{image_id}@aug{i}" for image_id in ids for i in range(copies)]
        labels = base.labels(ids).repeat(copies).tolist()
        super().__init__(f"{base.name}-aug", aug_ids, labels, base.classes)

    def read_image(self, image_id: str) -> Image.Image:
        source_id, copy = image_id.rsplit("@aug", 1)
        image = load_image(self.base.read_bytes(source_id), draft_size=self.decode_size)
        image.thumbnail((self.decode_size, self.decode_size))
        return augment_copy(image, self._source_index[source_id], int(copy), self.seed, self.augment)

    read_bytes = read_image  # the loaders accept decoded images wherever they accept bytes

    def source_key(self) -> str:
        return f"augmented:{self.base.source_key()}:{self.seed}:{json.dumps(self.augment.to_config(), sort_keys=True)}"
