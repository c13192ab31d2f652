"""Issue 18 point 3: the full-resolution CIFAR-10 fine-tuning set on one CUDA GPU, through the user path.

Every run is ``train_prepared`` (what ``hashseek train --protocol cifar10 --recipe best`` trains with):
the shipped cifar10 protocol for the run's seed (4,500 training / 500 validation / 1,000 queries /
54,000 database), the ``best`` recipe's end-to-end fine-tuning at 224 px (``--input-size``), the
epoch selected on the validation images, a hard training bound (``TrainConfig.max_minutes``: warm-up,
fine-tuning and validation inside it). The grid is bit lengths x seeds (default 16/32/48/64 x 0/1/2),
``--parallel`` runs at a time on the one GPU, each a process of its own (the CPU cores are shared out).

Evaluation (``--eval``): ``gpu`` (default) encodes the 60,000 images with the trained torch graph on
the GPU (``encode_with_torch``, the codes the selection used) and writes the same eval.json/summary.md
as ``hashseek train``; ``user`` is ``report_training`` exactly (the saved model on ONNX Runtime on the
CPU, the zero-training baseline compared on validation), about 25 ms of CPU per image: 12 runs x
60,000 images do not fit 10 minutes on 16 cores, so it is for re-checking single runs.

Sizing: ``--total-minutes`` (10) over ceil(runs / parallel) waves; each run's training bound is its
wave's share less ``EVAL_RESERVE_MINUTES`` for opening the data, the ONNX warm-up maps and the
evaluation. Defaults: 12 runs, 6 at a time, 2 waves of 5 min, 3.5 min of training each.

    python benchmarks/gpu_finetune.py --out runs/gpu_finetune            # on a CUDA machine
    python benchmarks/gpu_finetune.py --allow-cpu --smoke --out /tmp/gf   # a few images, 1 epoch, CPU

It writes ``OUT/b<bits>-seed<seed>/`` (model, split, eval.json, summary.md, record.json, run.log) and
``OUT/summary.json`` (device, torch, wall times, per-run and per-bit-length validation and test figures).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine  # noqa: E402

EVAL_RESERVE_MINUTES = 1.5   # per run, beside training: data, warm-up maps (ONNX, CPU), GPU evaluation, report
FIGURES = ("map_all", "precision_at_20", "vote_accuracy_top8")
SMOKE_CLASSES, SMOKE_PER_CLASS = 3, 8


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/gpu_finetune"))
    p.add_argument("--bits", type=int, nargs="+", default=[16, 32, 48, 64])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--backbone", default="efficientnet_lite0",
                   help="efficientnet_lite2 gained on cars-bmw13 (docs/bench/finetune_gpu.json); about 2.5x the cost")
    p.add_argument("--input-size", type=int, default=224)
    p.add_argument("--frozen-stages", type=int, default=0,
                   help="the trunk's first N stages kept pretrained (the best recipe keeps 3 for CPU speed; the GPU "
                        "set tunes the whole trunk, as it was sized)")
    p.add_argument("--precision", choices=["auto", "float32", "bfloat16"], default="float32",
                   help="the trunk's steps in bfloat16 autocast (auto: where the GPU supports it); the set was "
                        "sized in float32, and bfloat16 has been measured on a CPU only (docs/measurements.md)")
    p.add_argument("--total-minutes", type=float, default=10.0, help="the whole set's wall-time target")
    p.add_argument("--parallel", type=int, default=6, help="runs at a time on the one GPU")
    p.add_argument("--train-minutes", type=float, help="each run's training bound (default: sized from the above)")
    p.add_argument("--eval", choices=["gpu", "user"], default="gpu")
    p.add_argument("--allow-cpu", action="store_true", help="with --smoke: run on the CPU")
    p.add_argument("--smoke", action="store_true", help="1 bit length, 1 seed, a few CIFAR images, 1 epoch")
    p.add_argument("--worker", help=argparse.SUPPRESS)   # one run's settings, as JSON (the parent's child)
    args = p.parse_args()
    if args.worker:
        return run_one(json.loads(args.worker))

    import torch

    if not torch.cuda.is_available() and not (args.allow_cpu and args.smoke):
        sys.exit("gpu_finetune: torch sees no CUDA device (torch " + torch.__version__ + "); this set is sized for "
                 "one H100/H200-class GPU. To check the script on a CPU: --allow-cpu --smoke")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.smoke:
        args.bits, args.seeds, args.parallel = args.bits[:1], args.seeds[:1], 1
    runs = [(b, s) for s in args.seeds for b in args.bits]
    parallel = max(1, min(args.parallel, len(runs)))
    waves = math.ceil(len(runs) / parallel)
    train_minutes = args.train_minutes or max(0.5, args.total_minutes / waves - EVAL_RESERVE_MINUTES)
    threads = max(1, (os.cpu_count() or 1) // parallel)
    print(f"{len(runs)} runs on {device}, {parallel} at a time ({waves} waves), {threads} CPU threads each, "
          f"training bound {train_minutes:.2f} min per run, evaluation: {args.eval}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    source = smoke_source(args.out) if args.smoke else "cifar10"
    started = time.perf_counter()
    pending, running, done = list(runs), [], []
    while pending or running:
        while pending and len(running) < parallel:
            bits, seed = pending.pop(0)
            out = args.out / f"b{bits}-seed{seed}"
            spec = dict(source=str(source), bits=bits, seed=seed, out=str(out), device=device, smoke=args.smoke,
                        backbone=args.backbone, input_size=args.input_size, train_minutes=train_minutes,
                        frozen_stages=args.frozen_stages, precision=args.precision, eval=args.eval)
            out.mkdir(parents=True, exist_ok=True)
            env = {**os.environ, **{k: str(threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}}
            log = open(out / "run.log", "w")   # noqa: SIM115  (closed when the run ends)
            proc = subprocess.Popen([sys.executable, __file__, "--worker", json.dumps(spec)], stdout=log,
                                    stderr=subprocess.STDOUT, env=env)
            running.append((proc, log, out, bits, seed))
            print(f"started b{bits}-seed{seed} (log {out / 'run.log'})", flush=True)
        time.sleep(2)
        for item in list(running):
            proc, log, out, bits, seed = item
            if proc.poll() is None:
                continue
            running.remove(item)
            log.close()
            record = out / "record.json"
            done.append(json.loads(record.read_text()) if proc.returncode == 0 and record.is_file()
                        else {"bits": bits, "seed": seed, "failed": f"exit {proc.returncode}; see {out / 'run.log'}"})
            print(f"finished b{bits}-seed{seed}: " + (done[-1].get("failed") or
                  f"test mAP@all {done[-1]['test']['map_all']:.4f} in {done[-1]['wall_seconds']:.0f} s"), flush=True)
    summary = summarise(done, args, device, train_minutes, parallel, time.perf_counter() - started)
    write(args.out / "summary.json", summary)
    print(f"the whole set: {summary['wall_seconds'] / 60:.2f} min; {args.out / 'summary.json'}")
    return 0 if all("failed" not in r for r in done) else 1


def smoke_source(out: Path) -> Path:
    """A few CIFAR-10 test images per class, as a folder with one sub-folder per class (a user's source)."""
    from hashseek.core.paths import data_root

    folder = Path(tempfile.mkdtemp(prefix="smoke-src-", dir=out))
    taken: dict[str, int] = {}
    with tarfile.open(data_root() / "cifar10-jpg.tar.gz") as tar:
        for member in tar:
            parts = member.name.split("/")
            if not member.isfile() or len(parts) != 4:
                continue
            cls = parts[2]
            if taken.get(cls, 0) >= SMOKE_PER_CLASS or (cls not in taken and len(taken) == SMOKE_CLASSES):
                continue
            taken[cls] = taken.get(cls, 0) + 1
            (folder / cls).mkdir(exist_ok=True)
            (folder / cls / parts[3]).write_bytes(tar.extractfile(member).read())
    return folder


def run_one(spec: dict) -> int:
    """One run in this process: split, ``best`` recipe, bounded training, evaluation, record.json."""
    import torch

    from hashseek.eval.source_runs import prepare, recipe_plan, report_training, train_prepared
    from hashseek.train.config import device_name, training_device

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    started = time.perf_counter()
    smoke = spec["smoke"]
    prepared = prepare(spec["source"], seed=spec["seed"], progress=False)
    overrides = dict(bits=spec["bits"], seed=spec["seed"], backbone=spec["backbone"], device=spec["device"],
                     input_size=spec["input_size"], max_minutes=spec["train_minutes"],
                     frozen_stages=spec["frozen_stages"], precision=spec["precision"])
    if smoke:
        overrides.update(epochs=1, warmup_epochs=1, batch_size=4, input_size=64, patience=0)
    plan = recipe_plan("best", prepared, overrides=overrides, started=started)
    out = Path(spec["out"])
    result = train_prepared(prepared, plan.config, out, recipe="best", progress=False)
    if spec["eval"] == "user":
        run = report_training(prepared, result, out, recipe="best", recipe_lines=plan.lines, progress=False,
                              started=started)
        validation, test, selection = run.validation, run.test, run.selection
    else:
        validation, test = gpu_report(prepared, result, out, plan.lines, training_device(spec["device"]))
        selection = result.selection
    record = {"bits": spec["bits"], "seed": spec["seed"], "device": device_name(training_device(spec["device"])),
              "evaluation": spec["eval"], "train_seconds": result.seconds,
              "wall_seconds": time.perf_counter() - started, "selection": selection,
              "settings": {k: v for k, v in vars(plan.config).items() if not isinstance(v, torch.device)},
              "validation": _figures(validation), "test": _figures(test)}
    write(out / "record.json", record)
    return 0


def gpu_report(prepared, result, out: Path, lines: list[str], device) -> tuple[dict | None, dict]:
    """Validation and test figures from codes computed on ``device``; eval.json and summary.md as a run's."""
    from hashseek.eval.run_report import evaluate_protocol, write_run_report
    from hashseek.train.evaluator import EncodingMemo, encode_with_torch

    model, dataset, protocol = result.model, prepared.dataset, prepared.protocol
    model.to(device)
    encoder = EncodingMemo(lambda ids: encode_with_torch(model, dataset, ids, device, batch_size=256))
    validation, test = evaluate_protocol(model, dataset, protocol, progress=False, encoder=encoder)
    model.to("cpu")
    write_run_report(out, model, dataset, protocol, test, validation, source=prepared.source, recipe="best",
                     recipe_lines=lines + ["codes computed with the torch graph on the training device"],
                     selection=result.selection, train_seconds=result.seconds, history=result.history,
                     model_dir=out, settings=model.config.get("train") or {},
                     trained_on=model.config.get("trained_on"))
    return (validation.to_dict() if validation else None), test.to_dict()


def _figures(record: dict | None) -> dict | None:
    return None if record is None else {k: record.get(k) for k in (*FIGURES, "sizes")}


def summarise(done: list[dict], args, device: str, train_minutes: float, parallel: int, wall: float) -> dict:
    import torch

    ok = [r for r in done if "failed" not in r]
    per_bits = {}
    for bits in sorted({r["bits"] for r in ok}):
        rows = [r for r in ok if r["bits"] == bits]
        per_bits[str(bits)] = {f"{part}_{k}": _mean_std([r[part][k] for r in rows if r[part]])
                               for part in ("validation", "test") for k in FIGURES}
    return {"what": "CIFAR-10 fine-tuning set (issue 18 point 3): recipe best, epoch selected on validation",
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "protocol": "smoke: a few CIFAR-10 images, a drawn split" if args.smoke else
                        "cifar10 (1,000 queries / 54,000 database / 4,500 train / 500 validation), per seed",
            "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
            "torch": torch.__version__, "machine": machine(), "backbone": args.backbone,
            "input_size": 64 if args.smoke else args.input_size, "evaluation": args.eval, "parallel": parallel,
            "train_minutes_per_run": train_minutes, "wall_seconds": wall, "per_bits": per_bits,
            "runs": sorted(done, key=lambda r: (r["bits"], r["seed"]))}


def _mean_std(values: list) -> dict | None:
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "n": len(values)}


def write(path: Path, payload: dict) -> None:
    from hashseek.core.atomic import atomic_write_json

    atomic_write_json(path, payload)


if __name__ == "__main__":
    sys.exit(main())
