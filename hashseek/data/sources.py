"""A labelled source a user trains on: a folder with one sub-folder per class, a tar archive of such
folders, or a built-in dataset name; checked before any training starts.

A collection directory is a source too, but opening it needs ``hashseek.search``, which sits above
this layer: the caller (the CLI, ``hashseek.eval.own_data``) opens it and passes its dataset here.

The check says clearly what is wrong (no images, images outside any class folder, fewer than two
classes) and decodes every image once, so that unreadable files are counted and listed in the split
and the report instead of vanishing inside feature extraction.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from hashseek.core.errors import InvalidInputError, NotFoundError
from hashseek.data.datasets import (ARCHIVE_SUFFIXES, IMAGE_EXTENSIONS, ImageDataset, is_archive,
                                    is_collection_folder, open_images)
from hashseek.data.images import ImageDecodeError, load_image
from hashseek.data.named import NAMED_DATASETS, load_dataset

CHECK_DRAFT_SIZE = 32                   # JPEGs decode at 1/8 scale: a full check costs ~1 ms per image


@dataclass
class SourceCheck:
    """What a source holds: readable labelled images per class, and the images left out with the reason."""

    dataset: ImageDataset
    unreadable: dict[str, str] = field(default_factory=dict)   # id -> reason
    unlabelled: list[str] = field(default_factory=list)        # a collection's images without a label

    @property
    def excluded(self) -> dict[str, str]:
        """id -> why it is in no part of a split."""
        return {**dict.fromkeys(self.unlabelled, "no label"), **self.unreadable}

    @property
    def usable(self) -> list[str]:
        left_out = self.excluded
        return [i for i in self.dataset.ids if i not in left_out]

    def class_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(self.dataset.classes, 0)
        for label in self.dataset.labels(self.usable):
            counts[self.dataset.classes[label]] += 1
        return counts


def is_collection(path: str | Path) -> bool:
    return is_collection_folder(Path(path).expanduser())


def is_builtin(source: str | Path) -> bool:
    return str(source) in NAMED_DATASETS


def open_source(source: str | Path) -> ImageDataset:
    """A built-in dataset name, a folder or a tar archive, as a dataset (nothing decoded yet)."""
    if is_builtin(source):
        return load_dataset(str(source))
    path = Path(source).expanduser()
    if not path.exists():
        raise NotFoundError(f"{source}: no such folder or archive, and not a built-in dataset "
                            f"({', '.join(NAMED_DATASETS)})")
    if path.is_dir() and is_collection(path):
        raise InvalidInputError(f"{path} is a hashseek collection: open it with "
                                f"Collection.open(path).as_dataset() (the CLI does this for you)")
    if path.is_file() and not is_archive(path):
        raise InvalidInputError(f"{path} is a file, not a folder or a tar archive ({', '.join(ARCHIVE_SUFFIXES)}); "
                                "put each class's images in its own sub-folder")
    return open_images(path)   # listed afresh: a user's folder changes between runs


def check_source(dataset: ImageDataset, *, decode: bool = True, leave_out_unlabelled: bool = False,
                 progress: bool = True) -> SourceCheck:
    """Refuse what cannot train (no images, unlabelled images, fewer than two classes); with ``decode``
    every image is decoded once and the unreadable ones are listed, not raised. A collection's
    unlabelled uploads (``leave_out_unlabelled``) are listed and left out instead of refused."""
    where = getattr(dataset, "root", None) or getattr(dataset, "path", None) or dataset.name
    if not len(dataset):
        raise InvalidInputError(f"{where}: no images found (looked for {', '.join(sorted(IMAGE_EXTENSIONS))}); "
                                "put each class's images in its own sub-folder")
    unlabelled = [r.id for r in dataset.records if r.label < 0]
    if unlabelled and not leave_out_unlabelled:
        raise InvalidInputError(
            f"{where}: {len(unlabelled)} image(s) have no class (e.g. {', '.join(unlabelled[:3])}): training "
            "needs labelled images, one sub-folder per class; move them into their class's folder, or out of the "
            "source")
    check = SourceCheck(dataset, {**dataset.left_out, **(_unreadable(dataset, progress) if decode else {})},
                        unlabelled)
    counts = {c: n for c, n in check.class_counts().items() if n}
    if len(counts) < 2:
        found = ", ".join(f"{c} ({n})" for c, n in counts.items()) or "none"
        extra = f"; {len(check.excluded)} image(s) left out (unreadable or unlabelled)" if check.excluded else ""
        raise InvalidInputError(f"{where}: training needs at least two classes with readable labelled images, "
                                f"found {len(counts)}: {found}{extra}")
    return check


def _unreadable(dataset: ImageDataset, progress: bool) -> dict[str, str]:
    """id -> reason for every image that does not decode (two threads: Pillow releases the GIL)."""

    def probe(image_id: str) -> str | None:
        try:
            load_image(dataset.read_bytes(image_id), draft_size=CHECK_DRAFT_SIZE)
        except (ImageDecodeError, OSError) as err:
            return getattr(err, "reason", None) or str(err)
        return None

    ids = dataset.ids
    with ThreadPoolExecutor(max_workers=2) as pool:
        reasons = list(tqdm(pool.map(probe, ids), total=len(ids), desc="check images", unit="img",
                            disable=not progress, leave=False))
    return {i: r for i, r in zip(ids, reasons) if r is not None}
