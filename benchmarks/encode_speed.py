"""End-to-end encoding speed: hashseek's pipeline vs a plain PyTorch eager loop, same images, same run.

Both decode JPEG bytes from the Caltech101 archive, resize to the backbone's input and
run the backbone to pooled features. The plain loop does it one batch at a time in the
main thread with torch eager; hashseek decodes in background threads and runs the
network through ONNX Runtime. Features of the two must agree (cosine > 0.999).

    python benchmarks/encode_speed.py --images 600
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

from hashseek.data.named import load_dataset  # noqa: E402
from hashseek.models.features import BackboneEncoder, extract_features  # noqa: E402


def plain_torch_loop(dataset, ids, encoder: BackboneEncoder, batch_size: int) -> np.ndarray:
    out = []
    model = encoder.backbone.eval()
    with torch.inference_mode():
        for i in range(0, len(ids), batch_size):
            x = np.stack([encoder.preprocess(dataset.read_bytes(j)) for j in ids[i:i + batch_size]])
            out.append(model(torch.from_numpy(x)).numpy())
    return np.concatenate(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="caltech101")
    ap.add_argument("--backbone", default="efficientnet_lite0")
    ap.add_argument("--images", type=int, default=600)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="docs/bench/encode_speed.json")
    args = ap.parse_args()

    dataset = load_dataset(args.dataset)
    rng = np.random.default_rng(args.seed)
    ids = [dataset.ids[i] for i in np.sort(rng.choice(len(dataset), size=min(args.images, len(dataset)), replace=False))]
    encoder = BackboneEncoder(args.backbone, runtime="onnx")
    extract_features(dataset, ids[:64], encoder=encoder, cache=False, progress=False)  # warm-up

    t0 = time.perf_counter()
    fast = extract_features(dataset, ids, encoder=encoder, batch_size=args.batch_size, cache=False, progress=False)
    t_fast = time.perf_counter() - t0
    t0 = time.perf_counter()
    plain = plain_torch_loop(dataset, ids, encoder, args.batch_size)
    t_plain = time.perf_counter() - t0

    a = fast.features.astype(np.float32)
    b = plain[[ids.index(i) for i in fast.ids]]
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    result = {
        "protocol": {"dataset": args.dataset, "images": len(ids), "sample_seed": args.seed,
                     "backbone": args.backbone, "input_size": encoder.backbone.input_size,
                     "batch_size": args.batch_size, "torch_threads": torch.get_num_threads(),
                     "steps": "JPEG bytes from the archive -> decode -> resize -> normalise -> backbone -> pooled"},
        "machine": machine(),
        "plain_torch_eager_images_per_s": len(ids) / t_plain,
        "hashseek_onnx_pipeline_images_per_s": len(fast.ids) / t_fast,
        "speedup": (len(fast.ids) / t_fast) / (len(ids) / t_plain),
        "cosine_min": float(cos.min()),
        "cosine_mean": float(cos.mean()),
    }
    write_json(args.out, result)
    print(f"| pipeline | images/s |\n|---|---|\n| plain torch eager loop | {result['plain_torch_eager_images_per_s']:.1f} |\n"
          f"| hashseek (threads + ONNX Runtime) | {result['hashseek_onnx_pipeline_images_per_s']:.1f} |\n"
          f"speed-up {result['speedup']:.2f}x; feature cosine min {result['cosine_min']:.6f}, mean {result['cosine_mean']:.6f}")


if __name__ == "__main__":
    main()
