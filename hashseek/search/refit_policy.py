"""When a zero-training collection fits its hasher again: the refit policy, its settings defined once.

A zero-training collection's PCA/ITQ hasher is fitted on the collection's own stored features.
Fitted once on its first two images, it would code a grown library with directions that
describe two pictures. The policy:

* the first fit comes as soon as the library holds 2 images; while it holds fewer than
  ``min_images`` the fit is provisional (default search re-ranks the whole of a library of up
  to ``SEARCH_DEFAULTS.min_candidates`` images by float distance, so its results do not depend on
  the codes) and is redone each time the library grows by ``growth``, and once it reaches
  ``min_images``;
* after that, a refit whenever the library has grown to ``growth`` times the images the last fit
  saw. A refit re-encodes every code from the stored float features (no image is decoded), so
  with a growth factor the work of all refits stays proportional to the library's size.

The policy is stored in the collection's SQLite state (it survives reopening and reindexing), with
the number of library images and the time of the fit that made the codes. ``hashseek refit`` and
``POST /api/collections/{name}/refit`` refit by hand. The defaults were measured on Caltech101
validation data by ``benchmarks/refit_growth.py --select`` (``docs/refit.md``): see ``RefitPolicy``.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

from hashseek.core.errors import InvalidInputError
from hashseek.core.hasher import ImageHasher
from hashseek.search.metadata import Metadata

POLICY_STATE = "refit_policy"     # state key: the policy as JSON
FIT_IMAGES = "fit_images"         # state key: library images when the codes' fit was committed
FITTED_AT = "fitted_at"           # state key: when it was committed (unix time)


@dataclass(frozen=True)
class RefitPolicy:
    """``min_images``: the first fit on at least this many images settles the provisional ones;
    ``growth``: refit when the library reaches this factor times the images of the last fit.

    Chosen on Caltech101 validation data (train images as the library, validation images as queries;
    ``benchmarks/refit_growth.py --select``, ``docs/refit.md``). Just before a refit with ``growth`` 2,
    the codes come from a fit on half the library: the default search (cosine re-rank of the Hamming
    candidates) was then within 0.002 P@20 and 0.004 mAP of a fit on all of it at every size from 64
    to 2,454 images; Hamming-only search lost 0.012-0.036 mAP from 256 images on (1.5: up to 0.021 for
    18 refits up to 2,000 images instead of 10; 3 and 4: up to 0.09 and 0.11). At 64 and 128 images a
    fit on half the library lost 0.06-0.08 Hamming-only mAP, hence a settled fit at 256 however the
    images came (with a growth of 2 from 2 images it falls on the ladder: 2, 4, ..., 256, 512, 1024).
    """

    min_images: int = 256
    growth: float = 2.0

    def __post_init__(self):
        if not (isinstance(self.min_images, int) and self.min_images >= 2):
            raise InvalidInputError(f"min_images must be a whole number >= 2, got {self.min_images!r}")
        if not (isinstance(self.growth, (int, float)) and math.isfinite(self.growth) and self.growth > 1):
            raise InvalidInputError(f"growth must be a number > 1, got {self.growth!r}")

    def next_fit_at(self, fitted_on: int | None) -> int:
        """The library size at which the next (re)fit is due, after a fit on ``fitted_on`` images."""
        if fitted_on is None:
            return 2
        grown = max(fitted_on + 1, math.ceil(self.growth * fitted_on))
        return min(grown, self.min_images) if fitted_on < self.min_images else grown

    def due(self, images: int, fitted_on: int | None) -> bool:
        """Whether a library of ``images`` whose codes come from a fit on ``fitted_on`` images (None:
        not fitted yet) should be refitted now."""
        return images >= 2 and images >= self.next_fit_at(fitted_on)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "RefitPolicy":
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise InvalidInputError(f"unknown refit policy settings: {', '.join(sorted(unknown))}")
        return cls(**values)


REFIT_DEFAULTS = RefitPolicy()


@dataclass(frozen=True)
class RefitReport:
    """What a refit did: library images coded, rows the fit used (a sample of a large library), the
    seconds it took, and the new fit's digest."""

    images: int
    sampled: int
    seconds: float
    fit_digest: str

    def __str__(self) -> str:
        return (f"refitted on {self.sampled} of {self.images} images and recomputed their codes in "
                f"{self.seconds:.2f} s (fit {self.fit_digest})")


def stored_policy(meta: Metadata) -> RefitPolicy:
    """The collection's policy; the defaults for a collection made before policies were stored."""
    stored = meta.state(POLICY_STATE)
    return REFIT_DEFAULTS if stored is None else RefitPolicy.from_dict(json.loads(stored))


def store_policy(meta: Metadata, policy: RefitPolicy) -> None:
    meta.set_state(POLICY_STATE, json.dumps(policy.to_dict(), sort_keys=True))


def record_fit(meta: Metadata, db) -> None:
    """Inside the transaction that commits a fit's codes: how many library images it saw, and when."""
    images = db.execute("SELECT COUNT(*) FROM images WHERE in_library").fetchone()[0]
    meta.set_state(FIT_IMAGES, str(images), db)
    meta.set_state(FITTED_AT, repr(datetime.now(timezone.utc).timestamp()), db)


def fitted_on(meta: Metadata, image_hasher: ImageHasher) -> int | None:
    """Library images of the fit that made the codes (None: not fitted): recorded with the fit, else
    (collections made before it was recorded) the rows the hasher was fitted on."""
    if not image_hasher.is_fitted:
        return None
    stored = meta.state(FIT_IMAGES)
    return int(stored) if stored is not None else image_hasher.n_fit


def refit_due(meta: Metadata, image_hasher: ImageHasher, images: int) -> bool:
    """Whether the collection's policy wants a refit of its (refittable) hasher at ``images`` images."""
    return image_hasher.can_refit and stored_policy(meta).due(images, fitted_on(meta, image_hasher))


def fit_summary(meta: Metadata, image_hasher: ImageHasher) -> dict:
    """What ``info`` shows of a refittable hasher: when it was fitted, on how many library images (and
    rows of them sampled), whether that fit is still provisional, and when the policy refits next."""
    policy, images = stored_policy(meta), fitted_on(meta, image_hasher)
    at = meta.state(FITTED_AT) if images is not None else None
    return {"fitted_at": None if at is None else
            datetime.fromtimestamp(float(at), timezone.utc).isoformat(timespec="seconds"),
            "images": images, "sampled": image_hasher.n_fit if images is not None else None,
            "provisional": images is not None and images < policy.min_images,
            "next_refit_at": policy.next_fit_at(images), "policy": policy.to_dict()}
