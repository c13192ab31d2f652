"""Choose the search defaults (hashseek/search/defaults.py) and a trained model's re-rank feature
on validation data, then check them on the protocols' test queries.

For each protocol, two collections, as a user builds them:

* zero-training: pretrained EfficientNet-Lite0 pooled features + ITQ (64 bits) fitted on the
  library's own float16 features; the float feature is the pooled vector;
* trained: gap + csq (48 bits) trained on frozen maps of the protocol's ``train`` images; the float
  feature is each of ``hashseek.models.hash_model.RERANK_FEATURES`` (relaxed codes, the head's
  embedding), so the choice between them is measured too;

and a latent + ce model (48 bits) whose softmax classifier is compared with the top-k vote.

Splits: ``validation`` searches the protocol's validation images in a library of its training
images (what the defaults are chosen on); ``test`` searches the protocol's queries in its
database (what is reported). Every pipeline ranks the whole library with the engine's own order
(``hashseek.search.engine.result_order``): Hamming-only with ties by insertion order (the old
default), Hamming with ties by a float distance, and re-ranks of a candidate count that scales
with the library. Insertion-order independence: the default pipeline run on 3 random insertion
orders; the share of queries whose top-20 class composition is the same in all of them.

    python benchmarks/search_defaults.py --protocols cars-bmw13 caltech101 --split validation test

``--collections`` adds the same check end to end: the test database added to real zero-training
collections in 3 random orders, every query searched with the defaults.

Backbone maps are extracted once into the hashseek feature cache, part by part
(``benchmarks/protocol_maps.py``: the keys the trainer and the evaluator use; caltech101: about 4
minutes on an idle 2-core machine, cifar10's 60,000 images about 30 minutes and 7.5 GB), and read
memory-mapped in chunks; the trained models are saved under ``--models`` and reused (training takes
about a minute for cars, 10+ minutes for caltech101 on a busy 2-core machine). ``--metrics`` and
``--fractions`` narrow the grid on a large library (cifar10's 54,000 images):

    python benchmarks/search_defaults.py --protocols cifar10 --metrics cosine --fractions 0.1
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, write_json  # noqa: E402
from protocol_maps import protocol_maps  # noqa: E402

from hashseek.core.bits import hamming_distances, pack_bits  # noqa: E402
from hashseek.core.metrics import mean_average_precision, precision_at_k, vote_accuracy  # noqa: E402
from hashseek.data.named import load_dataset  # noqa: E402
from hashseek.data.protocols import get_protocol, protocol_dataset  # noqa: E402
from hashseek.hashers import create_hasher  # noqa: E402
from hashseek.core.paths import cache_root  # noqa: E402
from hashseek.models.hash_model import RERANK_FEATURES, load_model  # noqa: E402
from hashseek.search.defaults import SEARCH_DEFAULTS, SearchDefaults  # noqa: E402
from hashseek.search.distances import pairwise_distance  # noqa: E402
from hashseek.search.engine import candidate_cut, result_order  # noqa: E402
from hashseek.train import TrainConfig, Trainer  # noqa: E402

METRICS = ("chi2", "cosine", "euclidean")
FRACTIONS = (0.01, 0.05, 0.1, 0.25, 1.0)


def rankings(h: np.ndarray, f: np.ndarray | None, candidates: int | None, insertion: np.ndarray) -> np.ndarray:
    """(nq, n) library positions in result order; ``f`` None: Hamming with ties by insertion order."""
    out = np.empty(h.shape, np.int64)
    for q in range(len(h)):
        if f is None:
            out[q] = np.lexsort((insertion, h[q]))
        else:
            cut = None if candidates is None else candidate_cut(h[q], candidates)
            out[q] = result_order(h[q], f[q], insertion, cut)
    return out


def scores(order: np.ndarray, q_labels: np.ndarray, db_labels: np.ndarray) -> dict:
    """mAP@all, P@20 and top-8 vote accuracy of rankings (as rank positions: ties cannot occur)."""
    position = np.empty_like(order)
    np.put_along_axis(position, order, np.arange(order.shape[1])[None].repeat(len(order), 0), axis=1)
    return {"map_all": round(float(mean_average_precision(position, q_labels, db_labels)), 4),
            "precision_at_20": round(float(precision_at_k(position, q_labels, db_labels, 20)), 4),
            "vote_top8": round(float(vote_accuracy(position, q_labels, db_labels, 8)), 4)}


def pipelines(h, floats, q_labels, db_labels, n_library: int, fractions: tuple = FRACTIONS) -> dict:
    """Every pipeline on one (codes, feature) pair: name -> scores."""
    ids = np.arange(n_library)
    rows = {"hamming, ties by insertion": scores(rankings(h, None, None, ids), q_labels, db_labels)}
    for metric, f in floats.items():
        rows[f"hamming, ties by {metric}"] = scores(rankings(h, f, None, ids), q_labels, db_labels)
        for fraction in fractions:
            m = SearchDefaults(candidate_fraction=fraction).candidate_count(n_library)
            rows[f"rerank {metric}, {fraction:.0%} ({m})"] = scores(rankings(h, f, m, ids), q_labels, db_labels)
    return rows


def default_pipeline(h, floats, q_labels, db_labels, n_library: int, orders: int = 3, seed: int = 0) -> dict:
    """SEARCH_DEFAULTS's pipeline, and its insertion-order independence over ``orders`` random orders."""
    d = SEARCH_DEFAULTS
    f = floats[d.rerank or d.tie_distance]
    m = d.candidate_count(n_library) if d.rerank else None
    base = rankings(h, f, m, np.arange(n_library))
    def identical(f_used, m_used) -> float:
        """Share of queries whose top-k class composition is the same under every insertion order."""
        per_order = []
        for order in range(orders):
            insertion = np.random.default_rng(seed + order).permutation(n_library)
            top = rankings(h, f_used, m_used, insertion)[:, :d.k]
            per_order.append([Counter(db_labels[row].tolist()) for row in top])
        return round(float(np.mean([all(c[q] == per_order[0][q] for c in per_order) for q in range(len(h))])), 4)

    return {"settings": d.to_dict(), "candidates": m, **scores(base, q_labels, db_labels),
            "top20_classes_identical_over_3_orders": identical(f, m),
            "hamming_ties_by_insertion_top20_classes_identical": identical(None, None)}


def part_outputs(maps, models: dict, chunk: int = 1024) -> dict:
    """One protocol part's pooled vector (the maps' spatial mean, float16 as a collection stores it)
    and every model's head outputs, read from the memory-mapped maps ``chunk`` rows at a time (CIFAR-10's
    54,000 database maps are 13.5 GB as float32)."""
    blocks = []
    for start in range(0, len(maps.features), chunk):
        x = np.asarray(maps.features[start:start + chunk], np.float32)
        row = {"pooled": x.mean(axis=(2, 3)).astype(np.float16)}
        with torch.no_grad():
            for tag, model in models.items():
                out = model.head(torch.from_numpy(x))
                row[tag] = {"codes": out.signed_codes().numpy(), "embedding": out.embedding.numpy(),
                            "logits": None if out.logits is None else out.logits.numpy()}
        blocks.append(row)
    joined = {"pooled": np.concatenate([b["pooled"] for b in blocks]), "labels": np.asarray(maps.labels)}
    for tag in models:
        joined[tag] = {key: None if blocks[0][tag][key] is None else np.concatenate([b[tag][key] for b in blocks])
                       for key in blocks[0][tag]}
    return joined


def run_split(name: str, split: str, parts: dict, models: dict, metrics: tuple, fractions: tuple) -> dict:
    lib, qry = (parts["train"], parts["validation"]) if split == "validation" else (parts["database"], parts["query"])
    db_labels, q_labels = lib["labels"], qry["labels"]
    n = len(db_labels)
    out = {"library": n, "queries": len(q_labels)}

    # zero-training: ITQ fitted on the library's float16 pooled features (as a collection does)
    pooled_lib, pooled_qry = lib["pooled"], qry["pooled"].astype(np.float32)
    itq = create_hasher("itq", 64, seed=0).fit(pooled_lib.astype(np.float32))
    h = hamming_distances(itq.transform(pooled_qry), itq.transform(pooled_lib.astype(np.float32)))
    floats = {m: pairwise_distance(pooled_qry, pooled_lib, m) for m in metrics}
    t = time.perf_counter()
    out["zero-training itq 64"] = {"pipelines": pipelines(h, floats, q_labels, db_labels, n, fractions),
                                   "default": default_pipeline(h, floats, q_labels, db_labels, n)}
    print(f"{name} {split} zero-training: {time.perf_counter() - t:.0f} s", flush=True)

    for tag, model in models.items():
        lo, qo = lib[tag], qry[tag]
        h = hamming_distances(pack_bits(qo["codes"] >= 0), pack_bits(lo["codes"] >= 0))
        result = {}
        for feature in RERANK_FEATURES:
            floats = {m: pairwise_distance(qo[feature], lo[feature].astype(np.float16), m) for m in metrics}
            result[f"feature {feature}"] = pipelines(h, floats, q_labels, db_labels, n, fractions)
            if feature == model.rerank_feature:
                result["default"] = default_pipeline(h, floats, q_labels, db_labels, n)
        if qo["logits"] is not None:
            result["classifier_accuracy"] = round(float((qo["logits"].argmax(1) == q_labels).mean()), 4)
        out[tag] = result
        print(f"{name} {split} {tag}: done", flush=True)
    return out


def collection_orders(dataset, protocol, work: Path, orders: int = 3) -> dict:
    """End to end: the protocol's database added to a zero-training Collection in ``orders`` random
    orders; each query searched with the defaults (by its float feature, hashed by each collection's
    own fit); the share of queries whose top-k class composition is the same in every collection."""
    from hashseek.search.collection import Collection

    per_order, features = [], None
    for order in range(orders):
        ids = [protocol.database[i] for i in np.random.default_rng(order).permutation(len(protocol.database))]
        path = work / f"{protocol.name}-order{order}"
        if path.exists():
            shutil.rmtree(path)
        with Collection.create(path) as collection:
            collection.add_dataset(dataset, ids, progress=False)
            if features is None:
                hasher = collection.image_hasher
                features = hasher.features(np.stack([hasher.preprocess(dataset.read_bytes(q)) for q in protocol.query]))
            per_order.append([Counter(hit.label for hit in collection.search_vector(feature=f).hits) for f in features])
        shutil.rmtree(path)
    same = np.mean([all(c[q] == per_order[0][q] for c in per_order) for q in range(len(protocol.query))])
    return {"queries": len(protocol.query), "library": len(protocol.database), "orders": orders,
            "top_k": SEARCH_DEFAULTS.k, "classes_identical": round(float(same), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--protocols", nargs="+", default=["cars-bmw13", "caltech101"])
    parser.add_argument("--split", nargs="+", default=["validation", "test"], choices=["validation", "test"])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--metrics", nargs="+", default=list(METRICS), choices=METRICS,
                        help="float distances measured beside Hamming-only (the default pipeline's must be among them)")
    parser.add_argument("--fractions", nargs="+", type=float, default=list(FRACTIONS),
                        help="re-ranked shares of the library measured beside the default pipeline")
    parser.add_argument("--out", type=Path, default=Path("docs/bench/search_defaults.json"))
    parser.add_argument("--collections", action="store_true",
                        help="also build the test database as a zero-training collection in 3 random orders")
    parser.add_argument("--models", type=Path, default=cache_root() / "bench" / "search_defaults",
                        help="trained models are saved here and reused by the next run")
    args = parser.parse_args()
    torch.set_num_threads(2)
    command = "python " + " ".join(sys.argv)
    earlier = json.loads(args.out.read_text())["results"] if args.out.is_file() else {}  # other protocols' runs
    payload = {"machine": machine(), "defaults": SEARCH_DEFAULTS.to_dict(), "results": earlier}
    for name in args.protocols:
        dataset = load_dataset(protocol_dataset(name))
        protocol = get_protocol(name, dataset, seed=0)
        needed = ("train", "validation") + (("database", "query") if "test" in args.split else ())
        maps = protocol_maps(name, parts=needed)
        models = {}
        for head, loss in (("gap", "csq"), ("latent", "ce")):
            saved = args.models / f"{name}-{head}-{loss}-48"
            if (saved / "config.json").is_file():
                models[f"trained {head}+{loss} 48"] = load_model(saved)
                continue
            t = time.perf_counter()
            config = TrainConfig(head=head, loss=loss, bits=48, mode="frozen", epochs=args.epochs, seed=0)
            model = Trainer(config, progress=False).fit(dataset, protocol.train).model.eval()
            models[f"trained {head}+{loss} 48"] = model
            model.save(saved)
            print(f"{name}: trained {head}+{loss} in {time.perf_counter() - t:.0f} s", flush=True)
        parts = {part: part_outputs(maps[part], models) for part in needed}
        started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        run = {"command": command, "started": started, "load_average": os.getloadavg()}
        # a split measured alone keeps the protocol's other split from an earlier run
        payload["results"][name] = {**payload["results"].get(name, {}), **run, **{
            split: {**run, **run_split(name, split, parts, models, tuple(args.metrics), tuple(args.fractions))}
            for split in args.split}}
        if args.collections:
            payload["results"][name]["collection_insertion_orders"] = collection_orders(
                dataset, protocol, args.models / "collections")
        write_json(args.out, payload)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
