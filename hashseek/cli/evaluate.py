"""`hashseek eval`: every figure of a trained model or of methods run on a protocol, as JSON, Markdown and PNG."""
from __future__ import annotations

import re
from pathlib import Path


def _protocol(value: str, seed: int):
    """A protocol name, or the path of a split saved with ``Protocol.save`` (a custom split)."""
    from hashseek.data.protocols import Protocol, get_protocol

    return Protocol.load(value) if Path(value).is_file() else get_protocol(value, seed=seed)


def cmd_eval(args) -> int:
    from hashseek.eval.report import write_report
    from hashseek.eval.runner import MethodSpec, evaluate_trained_model, run_method

    if args.model:
        from hashseek.data.named import load_dataset
        from hashseek.models.hash_model import load_model

        model = load_model(args.model)
        if args.mirror_average:
            model.set_mirror_average(True)
        protocol_arg = args.protocol or model.config.get("protocol")
        if not protocol_arg:
            raise ValueError(f"{args.model} records no protocol; pass --protocol")
        protocol = _protocol(protocol_arg, args.seed)
        dataset = load_dataset(protocol.dataset)
        protocol.check(dataset)
        records = [evaluate_trained_model(model, dataset, protocol, timing=not args.no_timing)]
        label = Path(args.model).name + ("-mirror" if args.mirror_average else "")
    else:
        if not args.protocol:
            raise ValueError("--method needs --protocol")
        protocol = _protocol(args.protocol, args.seed)
        train = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "backbone": args.backbone}
        records = []
        for name in args.method:
            spec = MethodSpec.parse(name, **train)
            for bits in ([None] if spec.kind == "float" else args.bits):
                records.append(run_method(spec, protocol, bits, mode=args.mode, cache_dir=args.cache,
                                          timing=not args.no_timing))
        label = "-".join(args.method)
    protocol_name = protocol.name
    out = args.out or Path("runs") / "eval" / re.sub(r"[^\w.-]+", "_", f"{protocol_name}-{label}")
    written = write_report(records, out, title=f"hashseek eval: {label} on {protocol_name}")
    for r in records:
        f = r["figures"]
        print(f"{protocol_name} {r['method']} {r['bits'] or 'float'}: mAP@all {f['map_all']:.4f}  "
              f"P@20 {f['precision_at_20']:.4f}  top-8 vote {f['vote_accuracy_top8']:.4f}  "
              f"({r['mode']}, trained {r['times']['train_seconds']:.1f} s{', cached' if r.get('cached') else ''})")
    print(f"wrote {len(written)} files to {out} (summary.md, results.json, plots)")
    return 0


def register(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a model or methods on a protocol: JSON + Markdown + PNG plots")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--model", type=Path, help="a trained model's checkpoint folder")
    what.add_argument("--method", nargs="+",
                      help="head+loss (trained here, e.g. gap+hashnet), lsh/pcah/itq/sdh, or float")
    p.add_argument("--mirror-average", action="store_true",
                   help="--model: encode each image with its left-right mirror, averaged (2x encode time)")
    p.add_argument("--protocol", help="caltech101, cars-bmw13, cars-bmw13-unseen, cifar10 or a saved split "
                                      "(.json.gz); default for --model: the one it was trained on")
    p.add_argument("--bits", nargs="+", type=int, default=[48])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mode", default="frozen", choices=["frozen", "finetune"])
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--backbone", default="efficientnet_lite0")
    p.add_argument("--out", type=Path, help="output folder (default runs/eval/<protocol>-<method>)")
    p.add_argument("--cache", type=Path, help="per-run result cache (default $HASHSEEK_CACHE/results)")
    p.add_argument("--no-timing", action="store_true", help="skip the forward-time measurements")
    p.set_defaults(func=cmd_eval)
