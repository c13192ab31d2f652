"""Sync speed on a 10,000-image folder: delete 100, add 100, rewrite 10, then ``Collection.sync``.

The folder holds every Caltech101 image (8,677) plus 1,323 mirrored, re-encoded copies of some of
them (distinct bytes and pictures) to reach 10,000; 100 more mirrored copies wait outside it as the
images to add. The collection (default backbone, pooled features + ITQ 64 bits) is built once by
a first sync (or by ``--prepare-only``, then ``hashseek index WORK/folder -c WORK/collection``) and
reused from ``--work``; every run first puts the folder back in its base state and syncs it (not
timed), then times

1. a sync with nothing changed (a directory walk, one stat per file and the library's rows: nothing is read),
2. a sync after deleting 100 files, adding 100 and rewriting 10 in place (rotated). The added and
   rewritten files carry a one-pixel mark of the run, so their bytes are new to the collection on
   every run: all 110 are decoded and encoded, none restored or copied.

and checks that the second reports exactly those changes. The walk, hashing, encoding and total
times come from the ``SyncReport``.

    python benchmarks/sync_speed.py --work /tmp/hashseek-sync-bench

Building the collection (10,000 images encoded) takes minutes on 2 cores; later runs take seconds.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tarfile
import time
from pathlib import Path

from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, write_json  # noqa: E402

from hashseek.core.paths import data_root  # noqa: E402
from hashseek.search.collection import COLLECTION_JSON, Collection  # noqa: E402

N_FOLDER, N_DELETE, N_ADD, N_REWRITE = 10_000, 100, 100, 10
EXTRA = "mirrored"   # sub-folder of the folder holding the mirrored copies


def extract(work: Path) -> Path:
    """Caltech101's images unpacked once under ``work/caltech101``."""
    root = work / "caltech101"
    done = root / ".complete"
    if not done.is_file():
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        with tarfile.open(data_root() / "caltech101.tar") as tar:
            tar.extractall(root, filter="data")
        done.write_text("")
    return next(p for p in root.iterdir() if p.is_dir())


def mirrored(source: Path, target: Path) -> None:
    """A left-right mirror of ``source`` re-encoded as JPEG: new bytes and a new picture."""
    with Image.open(source) as image:
        ImageOps.mirror(image.convert("RGB")).save(target, quality=85)


def base_state(originals: Path, folder: Path, pool: Path, rng_seed: int) -> list[str]:
    """Put ``folder`` in its base state (every original + mirrored copies up to N_FOLDER) and ``pool``
    (N_ADD more mirrored copies); returns the folder's relative paths. Only what differs is rewritten."""
    files = sorted(p.relative_to(originals).as_posix() for p in originals.rglob("*.jpg"))
    rng = random.Random(rng_seed)
    chosen = rng.sample(files, N_FOLDER - len(files) + N_ADD)
    extra, added = chosen[:N_FOLDER - len(files)], chosen[N_FOLDER - len(files):]
    wanted = {rel: originals / rel for rel in files}
    wanted.update({f"{EXTRA}/{rel.replace('/', '_')}": originals / rel for rel in extra})
    for rel, source in wanted.items():
        target = folder / rel
        made = (target.is_file() and target.stat().st_mtime_ns == source.stat().st_mtime_ns)
        if not made:
            target.parent.mkdir(parents=True, exist_ok=True)
            if rel.startswith(EXTRA + "/"):
                mirrored(source, target)
            else:
                shutil.copyfile(source, target)
            os.utime(target, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns))
    for path in list(folder.rglob("*")):
        if path.is_file() and path.relative_to(folder).as_posix() not in wanted:
            path.unlink()
    pool.mkdir(parents=True, exist_ok=True)
    for rel in added:
        target = pool / f"new_{rel.replace('/', '_')}"
        if not target.is_file():
            mirrored(originals / rel, target)
    return sorted(wanted)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/hashseek-sync-bench"))
    ap.add_argument("--seed", type=int, default=0, help="which files are copied, deleted, added and rewritten")
    ap.add_argument("--prepare-only", action="store_true", help="build the folder and stop (to index it apart)")
    ap.add_argument("--out", default="docs/bench/sync_speed.json")
    args = ap.parse_args()
    originals = extract(args.work)
    folder, pool = args.work / "folder", args.work / "pool"
    files = base_state(originals, folder, pool, args.seed)
    print(f"{folder}: {len(files)} images; {len(list(pool.iterdir()))} to add in {pool}", file=sys.stderr)
    if args.prepare_only:
        return
    load_start = os.getloadavg()[0]   # the machine is shared: timings depend on it
    path = args.work / "collection"
    initial = None
    if not (path / COLLECTION_JSON).is_file():
        with Collection.create(path) as collection:
            initial = summary(collection.sync(folder))
    with Collection.open(path) as collection:
        reset = collection.sync(folder)   # back to the base state, stats recorded: not timed
        print(f"reset: {reset}", file=sys.stderr)
        time.sleep(2.5)                   # past the racy window of the files the reset rewrote,
        collection.sync(folder, progress=False)   # whose stats this records: the timed syncs read nothing old
        quiet = collection.sync(folder, progress=False)
        expected = change(folder, pool, files, args.seed)
        changed = collection.sync(folder)
        info = collection.info()
    found = {"added": sorted(changed.added), "removed": sorted(changed.removed), "updated": sorted(changed.updated)}
    exact = (found == expected and changed.unchanged == len(files) - N_DELETE - N_REWRITE and not changed.unreadable
             and changed.copied == 0)
    assert not quiet.changed and quiet.unchanged == len(files), f"the no-change sync changed something: {quiet}"
    assert exact, f"the sync after the changes did not report exactly them: {changed}"
    setup = {"folder": str(folder), "images": len(files), "dataset": "caltech101 (8,677 images) + mirrored copies",
             "changes": {"deleted": N_DELETE, "added": N_ADD, "rewritten": N_REWRITE}, "seed": args.seed,
             "hasher": info["hasher"], "n_bits": info["n_bits"], "index": info["index"],
             "command": f"python benchmarks/sync_speed.py --work {args.work}", "machine": machine(),
             "load_average_1min": {"start": load_start, "end": os.getloadavg()[0]}}
    results = {"no_change": summary(quiet), "after_changes": {**summary(changed), "exact": exact},
               "reset_before": summary(reset), **({"initial_build": initial} if initial else {})}
    write_json(args.out, {"setup": setup, "results": results})
    for name, row in results.items():
        t = row["timings"]
        print(f"{name:>14}: {row['report']}; walk {t['walk']:.2f} s, hash {t['hash']:.2f} s, "
              f"encode {t['encode']:.2f} s, remove {t['remove']:.2f} s, total {t['total']:.2f} s")


def summary(report) -> dict:
    return {"report": str(report), "added": len(report.added), "removed": len(report.removed),
            "updated": len(report.updated), "unchanged": report.unchanged, "copied": report.copied,
            "unreadable": len(report.unreadable), "timings": report.timings}


def change(folder: Path, pool: Path, files: list[str], seed: int) -> dict[str, list[str]]:
    """Delete N_DELETE files, add the pool's N_ADD under ``new/``, rewrite N_REWRITE in place (rotated a
    quarter turn); the source paths a sync must report. Added and rewritten files carry this run's mark in
    one pixel and their names, so their bytes are new to the collection on every run (nothing restored)."""
    rng, run = random.Random(seed + 1), time.time_ns()
    mark = tuple(run.to_bytes(8, "little")[:3])
    deleted = rng.sample(files, N_DELETE)
    rewritten = rng.sample(sorted(set(files) - set(deleted)), N_REWRITE)
    for rel in deleted:
        (folder / rel).unlink()
    for rel in rewritten:
        with Image.open(folder / rel) as image:
            turned = image.convert("RGB").rotate(90, expand=True)
        turned.putpixel((0, 0), mark)
        turned.save(folder / rel, format="JPEG", quality=90)
    (folder / "new").mkdir(exist_ok=True)
    added = []
    for new in sorted(pool.iterdir()):
        with Image.open(new) as image:
            image = image.convert("RGB")
        image.putpixel((0, 0), mark)
        image.save(target := folder / "new" / f"{run}_{new.name}", format="JPEG", quality=90)
        added.append(target)
    root = folder.resolve()
    return {"added": sorted(str(root / "new" / p.name) for p in added),
            "removed": sorted(str(root / rel) for rel in deleted),
            "updated": sorted(str(root / rel) for rel in rewritten)}


if __name__ == "__main__":
    main()
