"""One fine-tuning validation's encoding on the CPU: the eager torch graph against an ONNX snapshot.

Fine-tuning validates each chosen epoch by encoding the validation and training images with the
current weights. This times both encoders the trainer can use on the same images of the cars
archive, mirror-averaged at the given input size: ``encode_with_torch`` and ``SnapshotEncoder``
(its export of the weights included), and checks that they give the same codes.

    python benchmarks/validation_encode_speed.py --images 256 --input-size 224
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, write_json  # noqa: E402

from hashseek.data.sources import open_source  # noqa: E402
from hashseek.models.hash_model import HashModel  # noqa: E402
from hashseek.train.evaluator import SnapshotEncoder, encode_with_torch  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", default="../shared/datasets/cars-bmw13.tar.gz")
    ap.add_argument("--backbone", default="efficientnet_lite1")
    ap.add_argument("--input-size", type=int, default=224)
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--out", default="docs/bench/validation_encode_speed.json")
    args = ap.parse_args()

    dataset = open_source(args.source)
    ids = list(dataset.ids)[:: max(1, len(dataset.ids) // args.images)][:args.images]
    model = HashModel.build(args.backbone, "gap", 64, loss="csq", mode="finetune", input_size=args.input_size,
                            mirror_average=True)
    model.train()
    encode_with_torch(model, dataset, ids[:8], torch.device("cpu"))   # first-call allocations
    start = time.perf_counter()
    slow, _ = encode_with_torch(model, dataset, ids, torch.device("cpu"))
    torch_seconds = time.perf_counter() - start
    encoder = SnapshotEncoder(model, dataset)
    start = time.perf_counter()
    fast, _ = encoder(ids)
    snapshot_seconds = time.perf_counter() - start
    encoder.close()
    differing = float((np.unpackbits(fast.codes) != np.unpackbits(slow.codes)).mean())
    result = {
        "protocol": {"source": args.source, "images": len(ids), "backbone": args.backbone,
                     "input_size": args.input_size, "mirror_average": True, "batch_size": 32,
                     "torch_threads": torch.get_num_threads(),
                     "steps": "JPEG bytes -> decode -> resize -> both mirror passes -> packed codes"},
        "machine": machine(),
        "torch_eager_seconds": torch_seconds,
        "onnx_snapshot_seconds_with_export": snapshot_seconds,
        "speedup": torch_seconds / snapshot_seconds,
        "code_bits_differing": differing,
    }
    write_json(args.out, result)
    print(f"{len(ids)} images at {args.input_size} px, mirror-averaged: torch eager {torch_seconds:.1f} s, "
          f"ONNX snapshot {snapshot_seconds:.1f} s with its export ({result['speedup']:.1f}x); "
          f"code bits differing {differing:.4f}")


if __name__ == "__main__":
    main()
