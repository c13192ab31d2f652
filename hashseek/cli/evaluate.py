"""`hashseek eval`: every figure of a trained model or of methods run on a protocol, as JSON, Markdown and PNG."""
from __future__ import annotations

import re
from pathlib import Path

from hashseek.cli.train import print_figures
from hashseek.core.errors import InvalidInputError
from hashseek.data.datasets import archive_stem


def _protocol(value: str, seed: int):
    """A protocol name, or the path of a split saved with ``Protocol.save`` (a custom split)."""
    from hashseek.data.protocols import Protocol, get_protocol

    return Protocol.load(value) if Path(value).is_file() else get_protocol(value, seed=seed)


def cmd_eval(args) -> int:
    from hashseek.eval.report import write_report
    from hashseek.eval.runner import MethodSpec, run_method

    if args.model:
        return _eval_model(args)
    if args.source:
        raise InvalidInputError("--source evaluates a trained model (--model RUN) on another labelled source")
    if not args.protocol:
        raise InvalidInputError("--method needs --protocol")
    protocol = _protocol(args.protocol, args.seed)
    given = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "backbone": args.backbone}
    train = {k: v for k, v in given.items() if v is not None}   # MethodSpec holds the defaults
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


def _eval_model(args) -> int:
    """A trained model on the split saved with it, on --protocol, or (--source) on another labelled source."""
    from hashseek.eval.source_runs import evaluate_run

    if args.source and args.protocol:
        raise InvalidInputError("--source and --protocol both choose the images to evaluate on: give one")
    protocol = _protocol(args.protocol, args.seed) if args.protocol else None
    out = args.out or (args.model / (f"eval-{archive_stem(Path(args.source).expanduser().resolve())}"   # not .tar.gz
                                     if args.source else "eval"))
    run = evaluate_run(args.model, source=args.source, protocol=protocol, out=out, mirror_average=args.mirror_average,
                       progress=not args.quiet)
    print_figures(run, out)
    print(f"wrote {len(run.files)} files to {out} (summary.md, eval.json, results.json, plots)")
    return 0


def register(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a model or methods on a protocol: JSON + Markdown + PNG plots")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--model", type=Path, help="a trained model's run folder (evaluated on the split saved with it)")
    what.add_argument("--method", nargs="+",
                      help="head+loss (trained here, e.g. gap+hashnet), a hasher (lsh, pcah, itq, sdh, ksh, ...) "
                           "or float; a hasher or float as NAME:POOLING (float:gem, itq:rmac) pools the conv maps")
    p.add_argument("--mirror-average", action="store_true",
                   help="--model: encode each image with its left-right mirror, averaged (2x encode time)")
    p.add_argument("--protocol", help="caltech101, cars-bmw13, cars-bmw13-unseen, cifar10 or a saved split "
                                      "(.json.gz); default for --model: the split saved with it")
    p.add_argument("--source", help="--model: evaluate on another labelled folder, archive or collection instead "
                                    "(every image a query against all the others)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.add_argument("--bits", nargs="+", type=int, default=[48])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mode", default="frozen", choices=["frozen", "finetune"])
    p.add_argument("--epochs", type=int, help="--method: training epochs of deep methods (default 40)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--backbone", help="default efficientnet_lite0")
    p.add_argument("--out", type=Path, help="output folder (default runs/eval/<protocol>-<method>)")
    p.add_argument("--cache", type=Path, help="per-run result cache (default $HASHSEEK_CACHE/results)")
    p.add_argument("--no-timing", action="store_true", help="skip the forward-time measurements")
    p.set_defaults(func=cmd_eval)
