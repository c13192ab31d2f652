"""DPSH, DSH and HashNet on ``caltech101`` frozen EfficientNet-Lite0 maps, as their references train them and class-balanced.

Every setting is scored on the protocol's validation split (505 queries against the 2,454 training
images); only the setting with the best validation mAP@all of each row is then trained with
each seed and scored once on the test split (1,010 queries against 7,667 database images), beside
ITQ on the same backbone's pooled features. Writes ``docs/bench/classic_losses_caltech101.json``.

    python benchmarks/classic_losses.py                 # the grid below, seeds 0 1 2
    python benchmarks/classic_losses.py --seeds 0 --methods gap+dpsh
    python benchmarks/classic_losses.py --methods fc+hashnet --reuse OLD.json   # grid points in OLD.json not rerun

A row is a method (head+loss) and its settings: the reference rows keep each loss's published
form (DPSH's and DSH's pairs unweighted; HashNet's class-balanced, with continuation) and vary
what their references vary (in-batch pairs or the memory bank, optimizer, rate, epochs, DPSH's eta,
DSH's alpha); the ``:balanced`` rows add HashNet's class-balance weights to DPSH and DSH
(``balance=True``), which no reference does, to measure what the unweighted pairs cost with
101 classes (1% of pairs similar).

The heads' first operation is fixed (gap: 2x2 max pool then global average; fc: global average),
so each head is trained on those pooled vectors of the cached maps, computed once: the same
head, loss, cosine schedule, batch order and validation-selected epoch as
``hashseek.train.Trainer`` in frozen mode (which pools the maps again at every step), in seconds
instead of minutes a run on this shared 2-core CPU. Continuation (tanh(beta z), beta rising) is
applied where the loss's registry entry asks for it (HashNet's), as in the references.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine  # noqa: E402

from hashseek.core.atomic import atomic_write_json  # noqa: E402
from hashseek.core.bits import hamming_distances  # noqa: E402
from hashseek.core.metrics import mean_average_precision  # noqa: E402
from hashseek.data.named import load_dataset  # noqa: E402
from hashseek.data.protocols import get_protocol  # noqa: E402
from hashseek.hashers import create_hasher  # noqa: E402
from hashseek.losses import LOSSES, create_loss, hashnet_beta_schedule  # noqa: E402
from hashseek.models.features import BackboneEncoder, extract_features  # noqa: E402
from hashseek.models.heads import create_head  # noqa: E402
from hashseek.train import TrainConfig  # noqa: E402

OUT = Path("docs/bench/classic_losses_caltech101.json")
OPTIMIZERS = {"adam": torch.optim.Adam, "rmsprop": torch.optim.RMSprop}


def setting(epochs: int, lr: float = 1e-3, optimizer: str = "adam", bank: bool = False, **loss) -> dict:
    """One grid point: bank and loss options go to the loss, the rest to the loop."""
    return {"bank": bank, "optimizer": optimizer, "lr": lr, "epochs": epochs, "loss": loss}


# Rows and their grid points (seed 0, validation). Adam at the trainer's 1e-3 for in-batch pairs;
# with the bank, the batch is pushed away from rows up to an epoch stale and the shared part of the
# codes flips each epoch (memory_bank), so the bank runs at RMSprop (the references' optimizer) 1e-4.
# DPSH's eta: 0.1 (DeepHash-pytorch), 1 (DPSH-pytorch's lambda = 50 on sums, here 50 k / n_train), 3, 10.
GRID = {
    "gap+dpsh": [setting(20), setting(30, eta=1.0), setting(30, eta=3.0), setting(30, eta=10.0), setting(30, 3e-3, eta=10.0),
                 setting(150, eta=1.0), setting(150, 3e-3, eta=1.0), setting(300, 3e-3, eta=1.0),
                 setting(40, 1e-4, "rmsprop", bank=True), setting(30, 1e-4, "rmsprop", bank=True, eta=1.0)],
    "gap+dpsh:balanced": [setting(30, balance=True), setting(40, balance=True, eta=1.0),
                          setting(40, balance=True, eta=10.0), setting(150, balance=True, eta=1.0),
                          setting(300, balance=True, eta=1.0), setting(100, 3e-3, balance=True, eta=1.0)],
    "gap+dsh": [setting(60), setting(150), setting(30, alpha=0.1), setting(40, 1e-4, "rmsprop", bank=True)],
    "gap+dsh:balanced": [setting(60, balance=True), setting(150, balance=True),
                         setting(40, 1e-4, "rmsprop", bank=True, balance=True)],
    "fc+hashnet": [setting(60), setting(60, bank=True), setting(60, 1e-4, "rmsprop", bank=True)],
}
VALIDATE_EVERY = 10


def pooled(dataset, ids: list[str]) -> tuple[list[str], np.ndarray, dict[str, np.ndarray]]:
    """ids, labels, and the cached maps pooled as each head pools them (gap: max pool 2x2 + average)."""
    maps = extract_features(dataset, ids, encoder=BackboneEncoder("efficientnet_lite0", kind="map"))
    parts = {"fc": [], "gap": []}
    for start in range(0, len(maps.ids), 256):
        x = torch.from_numpy(np.asarray(maps.features[start:start + 256], dtype=np.float32))
        parts["fc"].append(x.mean(dim=(2, 3)).numpy())
        parts["gap"].append(F.max_pool2d(x, 2, 2).mean(dim=(2, 3)).numpy())
    return list(maps.ids), maps.labels, {k: np.concatenate(v) for k, v in parts.items()}


def codes(head, x: torch.Tensor) -> np.ndarray:
    head.eval()
    with torch.no_grad():
        return np.packbits(torch.cat([head(c).bits() for c in x.split(1024)]).numpy(), axis=1)


def score(head, xq, yq, xd, yd) -> float:
    return float(mean_average_precision(hamming_distances(codes(head, xq), codes(head, xd)), yq, yd))


def train(row: str, point: dict, seed: int, bits: int, data: dict) -> dict:
    """One frozen-mode run (the trainer's loop on pooled vectors); keeps the best validation epoch."""
    head_name, loss_name = row.split(":")[0].split("+")
    cfg = TrainConfig(head=head_name, loss=loss_name, bits=bits, epochs=point["epochs"], lr=point["lr"], seed=seed,
                      loss_kwargs={"bank": point["bank"], **point["loss"]})
    x, y = data["train"][cfg.head], torch.from_numpy(data["train"]["labels"]).long()
    torch.manual_seed(cfg.seed)
    head = create_head(cfg.head, x.shape[1], bits, None)
    loss_fn = create_loss(cfg.loss, bits, data["n_classes"], **cfg.loss_kwargs)
    continuation = LOSSES.metadata(cfg.loss)["continuation"]
    opt = OPTIMIZERS[point["optimizer"]](head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    total = cfg.epochs * math.ceil(len(x) / cfg.batch_size)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda t: 0.5 * (1 + math.cos(math.pi * min(t, total) / total)))
    step, best, history = 0, (-1.0, 0, None), []
    for epoch in range(cfg.epochs):
        head.train()
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch))
        losses = []
        for index in order.split(cfg.batch_size):
            if len(index) < 2:
                continue
            head.beta = hashnet_beta_schedule(step) if continuation else 1.0
            out = head(x[index])
            loss = loss_fn(out, y[index], index=index) if loss_fn.needs_index else loss_fn(out, y[index])
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
            step += 1
            losses.append(loss.item())
        if (epoch + 1) % VALIDATE_EVERY == 0 or epoch + 1 == cfg.epochs:
            v = data["validation"]
            val = score(head, v[cfg.head], v["labels"], x, data["train"]["labels"])
            history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "val_map": val})
            if val > best[0]:
                best = (val, epoch + 1, copy.deepcopy(head.state_dict()))
    head.load_state_dict(best[2])
    return {"head": head, "best_val_map": best[0], "best_epoch": best[1], "history": history}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", nargs="+", default=list(GRID), choices=list(GRID))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--bits", type=int, default=48)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--reuse", type=Path, help="an earlier output: its validation grid points are not run again")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)   # the CPU is shared; one thread per run is also the fastest for these sizes
    started = time.perf_counter()
    dataset, protocol = load_dataset("caltech101"), get_protocol("caltech101", seed=0)
    data = {"n_classes": len(dataset.classes)}
    for part, ids in [("train", protocol.train), ("validation", protocol.validation),
                      ("query", protocol.query), ("database", protocol.database)]:
        kept, labels, vectors = pooled(dataset, ids)
        data[part] = {"labels": labels, **{k: torch.from_numpy(v) for k, v in vectors.items()}}
    record = {"command": "python " + " ".join(["benchmarks/classic_losses.py", *(argv or sys.argv[1:])]),
              "protocol": {"name": protocol.name, **protocol.sizes()}, "bits": args.bits,
              "backbone": "efficientnet_lite0 (frozen, cached 224 px maps)", "machine": machine(),
              "metric": "mAP@all, Hamming ranking, ties in database order",
              "selection": "validation mAP@all (505 validation queries vs the 2,454 training images), every "
                           f"{VALIDATE_EVERY} epochs; the test split is scored once per seed for the chosen setting",
              "grid": {}, "chosen": {}, "test": {}}
    grid = [(m, p) for m in args.methods for p in GRID[m]]
    earlier = json.loads(args.reuse.read_text()) if args.reuse else {"grid": {}, "bits": args.bits}
    for method, point in tqdm(grid, desc="validation grid (seed 0)"):
        found = [r for r in earlier["grid"].get(method, []) if {k: r.get(k) for k in point} == point]
        if found and earlier["bits"] == args.bits:
            record["grid"].setdefault(method, []).append({**found[0], "reused_from": str(args.reuse)})
            continue
        run = train(method, point, 0, args.bits, data)
        record["grid"].setdefault(method, []).append(
            {**point, "best_val_map": run["best_val_map"], "best_epoch": run["best_epoch"], "history": run["history"]})
        tqdm.write(f"{method} {point}: val mAP {run['best_val_map']:.4f} @ epoch {run['best_epoch']}")
    t, q, d = data["train"], data["query"], data["database"]
    for seed in args.seeds:
        itq = create_hasher("itq", args.bits, seed=seed)
        itq.fit(t["fc"].numpy())
        test = mean_average_precision(hamming_distances(itq.transform(q["fc"].numpy()), itq.transform(d["fc"].numpy())),
                                      q["labels"], d["labels"])
        record["test"].setdefault("itq", []).append({"seed": seed, "map_all": float(test)})
    for method in args.methods:
        chosen = max(record["grid"][method], key=lambda r: r["best_val_map"])
        record["chosen"][method] = {k: chosen[k] for k in GRID[method][0]}
        for seed in tqdm(args.seeds, desc=f"{method} test"):
            run = train(method, record["chosen"][method], seed, args.bits, data)
            head = method.split("+")[0]
            test = score(run["head"], q[head], q["labels"], d[head], d["labels"])
            record["test"].setdefault(method, []).append(
                {"seed": seed, "map_all": test, "best_val_map": run["best_val_map"], "best_epoch": run["best_epoch"]})
            tqdm.write(f"{method} seed {seed}: test mAP@all {test:.4f} (val {run['best_val_map']:.4f})")
    summary = {}
    for method, runs in record["test"].items():
        values = np.array([r["map_all"] for r in runs])
        summary[method] = {"mean": float(values.mean()), "sd": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                           "seeds": len(values)}
    itq_mean = summary["itq"]["mean"]
    for method in args.methods:
        summary[method]["minus_itq"] = summary[method]["mean"] - itq_mean
        summary[method]["bar_itq_plus_0.10"] = bool(summary[method]["mean"] >= itq_mean + 0.10)
    record["summary"] = summary
    record["seconds"] = time.perf_counter() - started
    atomic_write_json(args.out, record, indent=1)
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
