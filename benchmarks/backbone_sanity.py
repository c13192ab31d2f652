"""Proof the pretrained weights are used: cosine kNN on frozen pooled features, pretrained vs random init.

    python benchmarks/backbone_sanity.py --protocol caltech101 --backbones efficientnet_lite0 mobilenet_v2
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, write_json  # noqa: E402

from hashseek.data.named import load_dataset  # noqa: E402
from hashseek.data.protocols import get_protocol, protocol_dataset  # noqa: E402
from hashseek.eval.retrieval import cosine_distances, retrieval_report  # noqa: E402
from hashseek.models.features import BackboneEncoder, extract_features  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--protocol", default="caltech101")
    ap.add_argument("--backbones", nargs="+", default=["efficientnet_lite0", "mobilenet_v2"])
    ap.add_argument("--seed", type=int, default=0, help="protocol seed and the random-init seed")
    ap.add_argument("--out", default="docs/bench/backbone_sanity.json")
    args = ap.parse_args()

    dataset = load_dataset(protocol_dataset(args.protocol))
    protocol = get_protocol(args.protocol, dataset, args.seed)
    needed = sorted(set(protocol.query) | set(protocol.database))
    rows = []
    for name in args.backbones:
        for pretrained in (True, False):
            torch.manual_seed(args.seed)
            encoder = BackboneEncoder(name, pretrained=pretrained)
            t0 = time.perf_counter()
            fs = extract_features(dataset, needed, encoder=encoder)
            q, db = fs.select(protocol.query), fs.select(protocol.database)
            report = retrieval_report(cosine_distances(q.features, db.features), q.labels, db.labels)
            rows.append({"backbone": name, "init": "pretrained" if pretrained else f"random (seed {args.seed})",
                         "seconds": time.perf_counter() - t0, **report})
            print(rows[-1], flush=True)
    write_json(args.out, {"protocol": {"name": args.protocol, "seed": args.seed, **protocol.sizes(),
                                       "distance": "cosine on pooled float features",
                                       "tie_rule": "database order", "map": "mAP@all"},
                          "machine": machine(), "rows": rows})
    print("| backbone | init | mAP@all | mAP@R | P@20 | top-8 vote acc |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['backbone']} | {r['init']} | {r['map_all']:.4f} | {r['map_at_r']:.4f} | "
              f"{r['precision_at_20']:.4f} | {r['vote_accuracy_top8']:.4f} |")


if __name__ == "__main__":
    main()
