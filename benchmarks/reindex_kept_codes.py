"""A reindex with a model that encodes as the live one keeps every code: how long it takes against re-encoding.

Protocol. A trained model's run folder (``--model``; its own saved split names its dataset) indexes the
first ``--images`` images of that dataset into a fresh collection under ``--work`` (timed: ``index``).
Then three reindexes of that collection, each timed and its report kept:

1. ``recalibrated``: the same weights with another classifier temperature (what ``hashseek calibrate`` writes):
   the codes are kept (``search.reindex.keep_live_codes``), nothing is decoded;
2. ``restore``: ``restore_previous`` back to the model it replaced (its slot is staged: nothing is encoded);
3. ``re-encoded``: the same weights encoding otherwise (the mirror average toggled): every image decoded and
   encoded again, what a reindex with any other model costs.

The codes of (1) are compared with those before it (equal), and the classifier's probability of one query
under both temperatures is recorded.

    python benchmarks/reindex_kept_codes.py --model build/cars-protocol-best-seed0 --out docs/bench/reindex_kept_codes.json
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, write_json  # noqa: E402

from hashseek.core.hasher import load_image_hasher  # noqa: E402
from hashseek.eval.source_runs import load_run_split, reopen  # noqa: E402
from hashseek.models.hash_model import load_model  # noqa: E402
from hashseek.search.collection import Collection  # noqa: E402


def timed(step) -> tuple[float, object]:
    start = time.perf_counter()
    result = step()
    return time.perf_counter() - start, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="a trained model's run folder")
    parser.add_argument("--images", type=int, default=10_000, help="at most this many of its dataset's images")
    parser.add_argument("--work", type=Path, default=None, help="where the collection goes (default: a temp dir)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    model = load_model(args.model)
    protocol = load_run_split(args.model, model)
    dataset = reopen(protocol)
    ids = list(dataset.ids)[:args.images]
    work = Path(tempfile.mkdtemp(dir=args.work))
    try:
        path = work / "C"
        with Collection.create(path, load_image_hasher(args.model)) as collection:
            index_seconds, added = timed(lambda: collection.add_dataset(dataset, ids))
            codes = {r.id: r.code for r in collection.list(limit=len(ids) + 1)}
            query = next(iter(codes))
            before = collection.classify(query, method="classifier").classifier
        recalibrated = load_model(args.model)
        recalibrated.set_classifier_temperature(2 * model.classifier_temperature).save(work / "recalibrated")
        runs = {}
        with Collection.open(path) as collection:
            seconds, report = timed(lambda: collection.reindex(load_image_hasher(work / "recalibrated")))
            runs["recalibrated"] = {"seconds": seconds, "kept": report.kept, "encoded": report.encoded}
            same = {r.id: r.code for r in collection.list(limit=len(ids) + 1)} == codes
            after = collection.classify(query, method="classifier").classifier
            seconds, report = timed(lambda: collection.restore_previous())
            runs["restore"] = {"seconds": seconds, "kept": report.kept, "encoded": report.encoded,
                               "staged_before": report.resumed}
            other = load_image_hasher(args.model).set_mirror_average(not model.mirror_average)
            seconds, report = timed(lambda: collection.reindex(other))
            runs["re-encoded"] = {"seconds": seconds, "kept": report.kept, "encoded": report.encoded}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    top = max(before, key=before.get)
    payload = {"script": "benchmarks/reindex_kept_codes.py", "model": str(args.model),
               "model_settings": {"backbone": model.config.get("backbone"), "input_size": model.input_size,
                                  "mirror_average": model.mirror_average, "bits": model.n_bits,
                                  "temperature": model.classifier_temperature},
               "dataset": dataset.name, "images": added.added, "index_seconds": index_seconds,
               "reindex": runs, "codes_equal_after_recalibrated": same,
               "classifier_top_probability": {"temperature": before[top], "twice_the_temperature": after[top],
                                              "class": top},
               "machine": machine()}
    write_json(args.out, payload)
    print(f"index {index_seconds:.1f} s for {added.added} images; " + "; ".join(
        f"{name} {r['seconds']:.2f} s (kept {r['kept']}, encoded {r['encoded']})" for name, r in runs.items())
        + f"; codes equal after the recalibrated reindex: {same}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
