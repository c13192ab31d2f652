"""`hashseek features`, `sanity`, `protocol`, `split`, `backbones`: datasets, splits, backbones and frozen features."""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from hashseek.cli.train import add_split_args


def add_backbone_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backbone", default="efficientnet_lite0", help="backbone name (see `hashseek backbones`)")
    p.add_argument("--weights", help="local weights file replacing the bundled ones")
    p.add_argument("--random-init", action="store_true", help="random initialisation instead of pretrained weights")
    p.add_argument("--pooling", help="aggregation of the conv map instead of the backbone's pooled vector: avg, spoc, "
                                     "mac, gem, rmac, crow, netvlad (see hashseek.models.aggregation)")
    p.add_argument("--runtime", default="onnx", choices=["onnx", "torch"])
    p.add_argument("--batch-size", type=int, default=32)


def _encoder(args, kind: str = "pooled"):
    from hashseek.models.features import BackboneEncoder

    return BackboneEncoder(args.backbone, kind=kind, runtime=args.runtime, pretrained=not args.random_init,
                           weights=args.weights, pooling=args.pooling if kind == "pooled" else None)


def cmd_features(args) -> int:
    from hashseek.data.named import load_dataset
    from hashseek.models.features import extract_features

    dataset = load_dataset(args.dataset)
    t0 = time.perf_counter()
    fs = extract_features(dataset, encoder=_encoder(args, args.kind), batch_size=args.batch_size, cache=not args.no_cache)
    seconds = time.perf_counter() - t0
    print(f"{len(fs.ids)} images -> {args.kind} features {fs.features.shape} float16 in {seconds:.1f} s "
          f"({fs.meta['n_failed']} unreadable skipped)")
    if args.out:
        print(f"written to {fs.save(args.out)}")
    return 0


def cmd_sanity(args) -> int:
    """Frozen-feature cosine kNN on a protocol: proves the pretrained weights work."""
    from hashseek.data.named import load_dataset
    from hashseek.data.protocols import get_protocol, protocol_dataset
    from hashseek.eval.retrieval import cosine_distances, retrieval_report
    from hashseek.models.features import extract_features

    dataset = load_dataset(protocol_dataset(args.protocol))
    protocol = get_protocol(args.protocol, dataset, seed=args.seed)
    needed = sorted(set(protocol.query) | set(protocol.database))
    features = extract_features(dataset, needed, encoder=_encoder(args), batch_size=args.batch_size)
    q, db = features.select(protocol.query), features.select(protocol.database)
    report = retrieval_report(cosine_distances(q.features, db.features), q.labels, db.labels)
    report = {"protocol": args.protocol, "seed": args.seed, "sizes": protocol.sizes(), "distance": "cosine",
              "features": features.meta["backbone"], "pretrained": not args.random_init,
              "tie_rule": "database order", **report}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{args.protocol}: {report['n_query']} queries vs {report['n_database']} database images, "
              f"{args.backbone} ({'pretrained' if report['pretrained'] else 'random init'}), cosine kNN")
        for key in ("map_all", "map_at_r", "precision_at_20", "vote_accuracy_top8"):
            print(f"  {key:<20} {report[key]:.4f}")
    return 0


def cmd_protocol(args) -> int:
    from hashseek.data.named import load_dataset
    from hashseek.data.protocols import get_protocol, protocol_dataset

    protocol = get_protocol(args.name, load_dataset(protocol_dataset(args.name)), seed=args.seed)
    print(json.dumps({"name": protocol.name, "seed": protocol.seed, **protocol.sizes(),
                      "unseen_classes": protocol.unseen_classes}))
    if args.out:
        print(f"written to {protocol.save(args.out)}")
    return 0


def cmd_split(args) -> int:
    """Draw (or, for a built-in dataset, take) a source's split, write it and print its class counts."""
    from hashseek.eval.source_runs import prepare

    prepared = prepare(args.source, seed=args.seed, val_fraction=args.val_fraction, test_fraction=args.test_fraction,
                       database=args.database, folders=args.folders, progress=not args.quiet)
    print("\n".join(prepared.lines(per_class=True)))
    print(f"written to {prepared.protocol.save(args.out)}; train on it with "
          f"`hashseek train {prepared.source} --split {args.out}`")
    return 0


def cmd_backbones(args) -> int:
    from hashseek.models.backbones import BACKBONES, create_backbone

    for name in BACKBONES.names():
        try:
            b = create_backbone(name, pretrained=False)
            print(f"{name:<20} input {b.input_size}px  map {b.feature_map_shape()}  pooled {b.pooled_dim}")
        except ImportError as err:
            print(f"{name:<20} unavailable: {err}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("features", help="extract (and cache) pooled backbone features of a dataset")
    p.add_argument("--dataset", required=True, help="caltech101, cifar10, cars-bmw13, or a folder/archive path")
    add_backbone_args(p)
    p.add_argument("--kind", default="pooled", choices=["pooled", "map"], help="pooled vector or last conv map")
    p.add_argument("--no-cache", action="store_true")
    p.add_argument("--out", type=Path, help="also write the feature set (.npz) here")
    p.set_defaults(func=cmd_features)

    p = sub.add_parser("sanity", help="retrieval sanity report: cosine kNN on frozen features for a protocol")
    p.add_argument("--protocol", "--dataset", dest="protocol", default="caltech101")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    add_backbone_args(p)
    p.set_defaults(func=cmd_sanity)

    p = sub.add_parser("protocol", help="show or write a protocol's id lists")
    p.add_argument("name")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path)
    p.set_defaults(func=cmd_protocol)

    p = sub.add_parser("split", help="draw the seeded, stratified train / validation / test split of a labelled "
                                     "source, write it (.json.gz) and print its class counts")
    p.add_argument("source", help="a folder with one sub-folder per class, a tar archive of such folders, a "
                                  "collection directory, or a built-in dataset (its shipped protocol)")
    p.add_argument("--out", type=Path, required=True, help="where to write the split (.json.gz)")
    add_split_args(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar while checking the images")
    p.set_defaults(func=cmd_split)

    p = sub.add_parser("backbones", help="list the registered backbones")
    p.set_defaults(func=cmd_backbones)
