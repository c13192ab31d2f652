"""What one training epoch iterates over: cached feature maps (frozen runs) or decoded images (fine-tuning).

Both shuffle with a generator seeded by (seed, epoch), so an epoch's batches are the same
whether the run went straight through or was resumed from a checkpoint. ``indexed`` also yields
each item's position in the training set, for losses that keep a memory bank of it.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from hashseek.data.augment import SeedAugment
from hashseek.data.images import ImageDecodeError, load_image
from hashseek.data.loader import Preprocess, iter_batches


class TensorBatches:
    def __init__(self, inputs: torch.Tensor, labels: torch.Tensor, batch_size: int, seed: int):
        self.inputs, self.labels, self.batch_size, self.seed = inputs, labels, batch_size, seed
        self.n_items = len(inputs)

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for inputs, labels, _ in self.indexed(epoch):
            yield inputs, labels

    def indexed(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        order = torch.randperm(self.n_items, generator=g)
        for i in range(0, self.n_items, self.batch_size):
            idx = order[i:i + self.batch_size]
            if len(idx) > 1:
                yield self.inputs[idx].float(), self.labels[idx], idx


class ImageBatches:
    """Decoded images held in memory, shorter side at most ``working_side`` (aspect kept);
    each epoch draws fresh seed augmentations. Unreadable images are left out and listed in ``dropped``."""

    def __init__(self, dataset, ids, labels, preprocess: Preprocess, batch_size: int, seed: int,
                 augment: SeedAugment | None, working_side: int = 320, progress: bool = True):
        self.images, self.dropped = {}, []
        for i in tqdm(ids, desc="decode training images", leave=False, disable=not progress):
            try:
                image = load_image(dataset.read_bytes(i), draft_size=working_side)
            except (ImageDecodeError, OSError) as err:
                self.dropped.append((i, str(err)))
                continue
            scale = working_side / min(image.size)
            if scale < 1:
                image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                                     Image.Resampling.BILINEAR, reducing_gap=2.0)
            self.images[i] = image
        keep = [n for n, i in enumerate(ids) if i in self.images]
        self.ids, self.labels, self.pre = [ids[n] for n in keep], labels[keep], preprocess
        self.batch_size, self.seed, self.augment = batch_size, seed, augment
        self.n_items = len(self.ids)

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for inputs, labels, _ in self.indexed(epoch):
            yield inputs, labels

    def indexed(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(self.n_items)
        position = {image_id: n for n, image_id in enumerate(self.ids)}

        def read(image_id: str):
            image = self.images[image_id]
            if self.augment is None:
                return image
            return self.augment(image, np.random.default_rng([self.seed, epoch, position[image_id]]))

        ordered = [self.ids[n] for n in order]
        for batch in iter_batches(ordered, read, self.pre, self.batch_size):
            if len(batch.ids) > 1:
                index = torch.tensor([position[i] for i in batch.ids])
                yield torch.from_numpy(batch.inputs), self.labels[index], index
