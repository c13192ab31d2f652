"""Search latency while a served collection restores its previous model (the page's "Restore previous model…").

Protocol. The cars-bmw13 images form a zero-training collection (EfficientNet-Lite0 + ITQ 64 bits; all
531, the one ``apply_latency.py`` builds, or the first ``--images`` of them); ``--added`` of them, drawn
with ``--seed``, are taken out, the collection is switched to 32-bit ITQ codes (a reindex; the 64-bit model
becomes the previous one) and the held-out images are added back: a restore encodes those with the 64-bit
model, the others keep their stored codes. Prepared once under ``--work``, copied for each run.
``hashseek serve`` runs the copy in its own process on 127.0.0.1. One closed-loop client alternates a
library search (GET /images/{id}/similar, ids drawn with the seed) and an upload search (POST /search,
real cars-bmw13 JPEGs), k=20 re-ranked by chi2: ``--before`` pairs, then from ``POST /model/restore``
until ``GET /model/restore`` no longer reads "restoring" (the state changes on the collection's thread
at the swap), then ``--before`` pairs on the restored model. Before the background restore, a search
sent during a restore waited for all of it (it queued on the collection's thread): up to
``restore_seconds``. Client, server and encoding share the machine's cores.

    python benchmarks/restore_latency.py --work ~/.cache/hashseek/bench
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, write_json  # noqa: E402
from _server import serve_process  # noqa: E402
from apply_latency import SEARCH, switch_latency  # noqa: E402
from collection_speed import build  # noqa: E402

from hashseek.core.paths import cache_root  # noqa: E402
from hashseek.data.named import load_dataset  # noqa: E402
from hashseek.search.adding import source_of  # noqa: E402
from hashseek.search.collection import COLLECTION_JSON, Collection  # noqa: E402
from hashseek.search.feature_hasher import FeatureHasher  # noqa: E402


def prepared(work: Path, dataset, images: int, added: int, seed: int) -> Path:
    """The collection switched to 32-bit codes with ``added`` images added since (built once)."""
    path = work / f"restore-latency-{images or 'all'}-{added}-{seed}" / "cars"
    if (path / COLLECTION_JSON).is_file():
        return path
    shutil.rmtree(path.parent, ignore_errors=True)
    ids = list(dataset.ids)[:images] if images else list(dataset.ids)
    held_out = set(np.random.default_rng(seed).choice(ids, added, replace=False).tolist())
    if images:
        Collection.create(path, n_bits=64, backbone="efficientnet_lite0").close()
    else:
        source = work / "cars-bmw13-efficientnet_lite0-itq64"
        build(source, dataset, 64, "efficientnet_lite0")
        shutil.copytree(source, path)
    with Collection.open(path) as collection:
        if images:
            collection.add_dataset(dataset, [i for i in ids if i not in held_out])
        else:
            sources = {source_of(dataset, image_id) for image_id in held_out}
            removed = collection.remove(record.id for record in collection.list(limit=len(collection))
                                        if record.source in sources)
            assert removed == added, f"{removed} of the {added} held-out images found in {source}"
        print(f"switching {len(collection)} images to 32-bit ITQ", file=sys.stderr)
        collection.reindex(FeatureHasher("efficientnet_lite0", 32))
        collection.add_dataset(dataset, sorted(held_out))
        assert collection.n_bits == 32 and len(collection) == len(ids)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=cache_root() / "bench")
    ap.add_argument("--images", type=int, default=0, help="the first N cars-bmw13 images (0: all 531)")
    ap.add_argument("--added", type=int, default=100, help="images added since the switch: the restore encodes them")
    ap.add_argument("--before", type=int, default=20, help="search pairs before and after the restore")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("docs/bench/restore_latency.json"))
    args = ap.parse_args()

    dataset = load_dataset("cars-bmw13")
    source = prepared(args.work, dataset, args.images, args.added, args.seed)
    copy = args.work / "restore-latency-run" / "cars"
    shutil.rmtree(copy.parent, ignore_errors=True)
    shutil.copytree(source, copy)
    with Collection.open(copy) as collection:
        ids = [record.id for record in collection.list(limit=len(collection))]
    photos = [dataset.read_bytes(i) for i in np.random.default_rng(args.seed).choice(dataset.ids, 20, replace=False)]
    load_before = os.getloadavg()
    restore_url = f"/api/collections/{copy.name}/model/restore"
    with serve_process([copy]) as (_, url):
        rows, restore_seconds, info = switch_latency(
            url, copy.name, ids, photos, args.seed, args.before,
            lambda http: http.post(restore_url).raise_for_status(),
            lambda http: http.get(restore_url).json(), "restoring", "restored")
    print(f"restore (encode {args.added} images + swap): {restore_seconds:.1f} s", file=sys.stderr)
    write_json(args.out, {
        "benchmark": "search latency during a restore of the previous model (background encoding)",
        "command": "python benchmarks/restore_latency.py " + " ".join(sys.argv[1:]),
        "data": f"cars-bmw13, {len(ids)} images, switched from EfficientNet-Lite0 + ITQ 64 bits to 32 bits, "
                f"then {args.added} added (seed {args.seed})",
        "search": SEARCH, "restore_seconds": restore_seconds, "images": len(ids), "added": args.added,
        "restored_bits": info["n_bits"], "rows": rows,
        "note": "before the background restore, a search sent during a restore waited up to restore_seconds",
        "load_average_before": load_before, "machine": machine()})


if __name__ == "__main__":
    main()
