"""How close the training planner's speed probe comes to a real training step, and how much it varies.

Protocol. The `best` recipe's fine-tuning setting (EfficientNet-Lite1, gap+csq, ``--input-size``, 48 bits)
is probed ``--probes`` times in a row with the former settings (4 images a step, the mean of 2 steps) and
with the current ones (``measure_speed``'s defaults: up to 16 images a step, the median of 3); each probe
builds its model afresh, as a run does. Then real training steps: batch 32 of random images, the whole
model, Adam, as the trainer takes them (trunk in eval mode), ``--steps`` steps after one untimed step.
Figures: the training step's ms per image of each probe (mean, sd, min, max, max/min) and the real step's
median.

    python benchmarks/speed_probe.py --probes 5 --input-size 280
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from hashseek.core.atomic import atomic_write_json
from hashseek.eval.cost import machine
from hashseek.losses import create_loss
from hashseek.models.hash_model import HashModel
from hashseek.train.config import TrainConfig
from hashseek.train.recipes import RECIPES, measure_speed

N_CLASSES = 101


def probes(config: TrainConfig, n: int, **settings) -> dict:
    values, seconds = [], []
    for _ in range(n):
        start = time.perf_counter()
        values.append(measure_speed(config, **settings).train_ms)
        seconds.append(time.perf_counter() - start)
    return {"train_ms": values, "mean": statistics.mean(values), "sd": statistics.stdev(values) if n > 1 else 0.0,
            "min": min(values), "max": max(values), "max_over_min": max(values) / min(values),
            "probe_seconds": statistics.mean(seconds)}


def real_steps(config: TrainConfig, steps: int) -> dict:
    model = HashModel.build(config.backbone, config.head, config.bits, None, loss=config.loss, mode="finetune",
                            input_size=config.input_size)
    loss_fn = create_loss(config.loss, config.bits, N_CLASSES)
    optimizer = torch.optim.Adam(model.parameters(), config.lr)
    model.head.train()
    model.backbone.eval()
    x = torch.randn(config.batch_size, 3, config.input_size, config.input_size)
    y = torch.randint(0, N_CLASSES, (config.batch_size,))
    times = []
    for n in range(steps + 1):
        start = time.perf_counter()
        loss = loss_fn(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if n:                                   # the first step allocates
            times.append(1000 * (time.perf_counter() - start) / config.batch_size)
    return {"train_ms": times, "median": statistics.median(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--probes", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--input-size", type=int, default=280)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "bench"
                        / "speed_probe.json")
    args = parser.parse_args()
    config = TrainConfig(**{**RECIPES.create("best"), "bits": 48, "input_size": args.input_size})
    former = probes(config, args.probes, batch=4, repeats=2)
    print(f"former probe (4 images, mean of 2): {former['mean']:.1f} ms/image, sd {former['sd']:.1f}, "
          f"max/min {former['max_over_min']:.2f}", file=sys.stderr)
    current = probes(config, args.probes)
    print(f"current probe (defaults): {current['mean']:.1f} ms/image, sd {current['sd']:.1f}, "
          f"max/min {current['max_over_min']:.2f}", file=sys.stderr)
    real = real_steps(config, args.steps)
    print(f"real steps (batch {config.batch_size}, Adam): {real['median']:.1f} ms/image", file=sys.stderr)
    atomic_write_json(args.out, {
        "benchmark": "speed_probe", "command": " ".join(["python", *sys.argv]),
        "protocol": __doc__.split("Protocol. ")[1].split("\n\n")[0].replace("\n", " "),
        "setting": {"backbone": config.backbone, "input_size": config.input_size, "bits": config.bits},
        "former_probe": former, "current_probe": current, "real_steps": real, "machine": machine()})
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
