"""Regenerate ``docs/results.md``, its plots and per-protocol JSON: every method x protocol x code length.

Every run goes through ``hashseek.eval.runner.run_method``, whose per-run JSON cache makes the
command resumable: stop it at any point and the same command continues where it stopped (and
rebuilds the page from the cached runs in seconds once all are done). The page is rewritten
every two minutes during a run, so a long run shows its results as they come.

    python benchmarks/run_all.py --quick                       # minutes: cars-bmw13, 2 lengths, 5 epochs
    python benchmarks/run_all.py                               # everything (CIFAR-10 takes hours on CPU)
    python benchmarks/run_all.py --protocols caltech101 cars-bmw13 --methods-for caltech101=gap+hashnet,itq,float
    python benchmarks/run_all.py --epochs 20 --epochs-for spp_pmt+multitask=4   # fewer epochs for a slow head
    python benchmarks/run_all.py --epochs-for cars-bmw13:gap+csq=120 --schedule-for bilinear+hashnet=plateau
    python benchmarks/run_all.py --reuse docs/results ...      # keep the committed runs, add the missing ones
    python benchmarks/run_all.py --methods float float:gem ksh # float:POOLING / HASHER:POOLING: conv-map aggregations
    python benchmarks/run_all.py --cached-only --reuse docs/results --trained build/caltech101-ft48  # + a train run

``--trained RUN`` copies a ``hashseek train`` run's figures (its ``eval.json``, without the history) to
``<page folder>/trained/``; every record there becomes a row of the page's "Trained with `hashseek train`"
tables (mean and sd over the seeds of one setting), so the page keeps them when regenerated without the flag.

A reused run measured on an older split of its protocol (before the protocol held out validation
images) never passes for a run of the current split: it is carried onto the page marked "older
protocol", unless the cache holds that method and code length on the current split, or this
command runs it.

Runs go from cheap to costly over all protocols (float and shallow first, then the deep heads by
their training cost), so a stopped run leaves whole tables rather than one finished protocol.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine  # noqa: E402
from quoted import QUOTED  # noqa: E402

from hashseek.data.protocols import Protocol, get_protocol  # noqa: E402
from hashseek.eval.report import reference_length, write_json, write_results_page  # noqa: E402
from hashseek.eval.runner import (ALL_METHODS, MethodSpec, cached_record, part_headline, run_method,  # noqa: E402
                                  same_split, store_record)
from hashseek.eval.trained_runs import record_name, trained_record  # noqa: E402
from hashseek.train.config import SCHEDULES, TrainConfig  # noqa: E402

PROTOCOLS = ("caltech101", "cars-bmw13", "cars-bmw13-unseen", "cifar10")
# Training cost of a head on frozen maps, measured on this CPU (seconds per epoch on Caltech101's
# 2,959 training images): latent 8, gap 10, fc 22, bilinear 67, spp_pmt 215.
HEAD_COST = ("latent", "gap", "fc", "bilinear", "spp_pmt")
BITS = (16, 32, 48, 64)
PAGE_EVERY_S = 120  # rewrite the page during a long run at most this often
QUICK = {"protocols": ("cars-bmw13",), "bits": (16, 32), "epochs": 5,
         "methods": ("gap+hashnet", "bilinear+hashnet", "lsh", "itq", "sdh", "float")}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help=f"minutes: {', '.join(QUICK['protocols'])}, bits {QUICK['bits']}, {QUICK['epochs']} epochs, "
                         f"methods {', '.join(QUICK['methods'])}; writes build/results-quick/ unless --out is given")
    ap.add_argument("--protocols", nargs="+", choices=PROTOCOLS)
    ap.add_argument("--bits", nargs="+", type=int)
    ap.add_argument("--methods", nargs="+", help=f"default: all of {', '.join(ALL_METHODS)} "
                                                 "(float:POOLING or HASHER:POOLING: a conv-map aggregation)")
    ap.add_argument("--methods-for", action="append", default=[], metavar="PROTOCOL=M1,M2",
                    help="restrict one protocol to some methods (e.g. cifar10=gap+csq,float); repeatable")
    ap.add_argument("--epochs", type=int, help="deep methods' training epochs (default 40, quick 5)")
    ap.add_argument("--epochs-for", action="append", default=[], metavar="[PROTOCOL:]METHOD=N",
                    help="epochs for one deep method, overriding --epochs (e.g. spp_pmt+multitask=4), on one "
                         "protocol only with PROTOCOL: (e.g. cars-bmw13:gap+csq=120, which wins); repeatable")
    ap.add_argument("--schedule-for", action="append", default=[], metavar="[PROTOCOL:]METHOD=SCHEDULE",
                    help=f"learning-rate schedule of one deep method ({', '.join(SCHEDULES)}; default "
                         f"{TrainConfig.schedule}), as --epochs-for; repeatable")
    ap.add_argument("--validate-every-for", action="append", default=[], metavar="[PROTOCOL:]METHOD=N",
                    help="epochs between one deep method's validations, as --epochs-for (default: the trainer's "
                         "share-of-time rule, which validates a run of cheap epochs only every dozen or so)")
    ap.add_argument("--mode", default="frozen", choices=["frozen", "finetune"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, help="the Markdown page (default docs/results.md); plots go to its stem folder")
    ap.add_argument("--cache", type=Path, help="per-run JSON cache (default $HASHSEEK_CACHE/results)")
    ap.add_argument("--trained", nargs="+", type=Path, default=[], metavar="RUN",
                    help="`hashseek train` run folders (or their eval.json): their figures join the page's "
                         "trained-run tables and are kept in its trained/ folder")
    ap.add_argument("--no-timing", action="store_true", help="skip the forward-time measurements")
    ap.add_argument("--cached-only", action="store_true",
                    help="run nothing: write the page from the runs the cache holds (the same command without "
                         "this flag runs the missing ones)")
    ap.add_argument("--reuse", type=Path, metavar="DIR",
                    help="a results page's JSON folder (e.g. docs/results): its runs enter the cache and are not "
                         "repeated, so a fresh machine continues a committed page")
    args = ap.parse_args(argv)
    preset = QUICK if args.quick else {"protocols": PROTOCOLS, "bits": BITS, "epochs": 40, "methods": ALL_METHODS}
    for key, value in preset.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.out is None:
        args.out = Path("build/results-quick/results.md") if args.quick else Path("docs/results.md")
    args.per_protocol = {}
    for item in args.methods_for:
        protocol, _, methods = item.partition("=")
        if protocol not in args.protocols or not methods:
            raise SystemExit(f"--methods-for {item!r}: expected PROTOCOL=M1,M2 with PROTOCOL among --protocols")
        args.per_protocol[protocol] = methods.split(",")
    args.method_epochs = per_method(args.epochs_for, "--epochs-for", "N", str.isdigit, int)
    args.method_schedules = per_method(args.schedule_for, "--schedule-for", "SCHEDULE", SCHEDULES.__contains__, str)
    args.method_intervals = per_method(args.validate_every_for, "--validate-every-for", "N", str.isdigit, int)
    return args


def per_method(items: list[str], flag: str, value_name: str, valid, convert) -> dict:
    """``[PROTOCOL:]HEAD+LOSS=VALUE`` items -> {(protocol or None, method): value}."""
    out = {}
    for item in items:
        target, _, value = item.partition("=")
        protocol, _, method = target.rpartition(":")
        if "+" not in method or (protocol and protocol not in PROTOCOLS) or not valid(value):
            raise SystemExit(f"{flag} {item!r}: expected [PROTOCOL:]HEAD+LOSS={value_name}")
        out[protocol or None, method] = convert(value)
    return out


def setting(values: dict, protocol: str, method: str, default):
    """A per-method setting: the protocol's own value, else the method's, else the default."""
    return values.get((protocol, method), values.get((None, method), default))


def plan(args: argparse.Namespace) -> list[tuple[str, MethodSpec, int | None]]:
    """(protocol, method, bits) from cheap to costly: float, shallow, then deep heads by training cost;
    protocols in the given order within each method."""
    runs = []
    for protocol in args.protocols:
        for name in args.per_protocol.get(protocol, args.methods):
            train = {"epochs": setting(args.method_epochs, protocol, name, args.epochs),
                     "schedule": setting(args.method_schedules, protocol, name, None),
                     "validate_every": setting(args.method_intervals, protocol, name, None)}
            spec = MethodSpec.parse(name, **{k: v for k, v in train.items() if v is not None})
            runs += [(protocol, spec, None)] if spec.kind == "float" else [(protocol, spec, b) for b in args.bits]
    methods = list(dict.fromkeys(spec.name for _, spec, _ in runs))
    protocols = list(args.protocols)

    def cost(run: tuple[str, MethodSpec, int | None]) -> tuple:
        protocol, spec, _ = run
        tier = ("float", "shallow").index(spec.kind) if spec.kind != "deep" else \
            2 + (HEAD_COST.index(spec.head) if spec.head in HEAD_COST else len(HEAD_COST))
        return tier, methods.index(spec.name), protocols.index(protocol)

    return sorted(runs, key=cost)  # stable: code lengths keep their order


def reuse(folder: Path, splits: dict[str, Protocol], cache: Path | None) -> list[dict]:
    """A page's runs: those of a protocol's current split enter the run cache (not repeated); those of
    an older split are returned, to be carried onto the page marked as such (never cached as current)."""
    stored, carried = 0, []
    for path in sorted(folder.glob("*.json")):
        for record in json.loads(path.read_text())["records"]:
            current = splits.get(record["protocol"]["name"])
            if current is None:
                continue
            if same_split(record, current):
                stored += store_record(record, cache)
            else:
                carried.append(record)
    print(f"reused {stored} runs of the current splits from {folder}; {len(carried)} runs of older splits carried")
    return carried


def carried_rows(carried: list[dict], records: list[dict], splits: dict[str, Protocol], bits: tuple,
                 cache: Path | None) -> list[dict]:
    """The older-split runs still worth showing (at the page's code lengths): a run of the current split of
    the same protocol, method and code length (made by this command, or found in the cache) replaces one."""
    done = {(r["protocol"]["name"], r["method"], r["bits"]) for r in records}
    out = []
    for old in carried:
        name = old["protocol"]["name"]
        if (name, old["method"], old["bits"]) in done or old["bits"] not in (*bits, None):
            continue
        mode = "finetune" if old["mode"].startswith("finetune") else "frozen"
        current = cached_record(MethodSpec(**old["spec"]), splits[name], old["bits"], mode, cache)
        out.append(current if current is not None else old)
        done.add((name, old["method"], old["bits"]))
    return out


def without_trained(argv: list[str]) -> list[str]:
    """The arguments less ``--trained`` and its run folders."""
    out, skipping = [], False
    for arg in argv:
        if arg == "--trained":
            skipping = True
        elif arg.startswith("--trained="):
            continue
        elif skipping and not arg.startswith("-"):
            continue
        else:
            skipping = False
            out.append(arg)
    return out


def with_class_parts(report: dict, results: Path) -> dict:
    """A run's report with its test queries' seen/unseen figures: an ``eval.json`` written before it kept them
    takes them from the run's ``results.json`` (the same evaluation's record)."""
    test = report.get("test")
    if not test or any(part in test for part in ("seen", "unseen")) or not results.is_file():
        return report   # a report without test figures is refused by ``trained_record``, by name
    record = json.loads(results.read_text())["records"][0]
    parts = {part: part_headline(record[part]) for part in ("seen", "unseen") if part in record}
    return {**report, "test": {**test, **parts}} if parts else report


def trained_runs(runs: list[Path], folder: Path) -> list[dict]:
    """Copy the given runs' figures into ``folder`` (one file per split, method, bits and seed: a rerun
    replaces its seed's file) and return every record the folder holds."""
    for run in runs:
        report = run / "eval.json" if run.is_dir() else run
        if not report.is_file():
            raise SystemExit(f"--trained {run}: no eval.json there (a finished `hashseek train` run folder)")
        record = trained_record(with_class_parts(json.loads(report.read_text()), report.parent / "results.json"),
                                where=str(report))
        write_json(folder / record_name(record), record)
        print(f"trained run {report} -> {folder / record_name(record)}")
    return [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    given = argv if argv is not None else sys.argv[1:]
    # the page keeps the --trained runs' figures, so the command that regenerates it does not name them
    command = " ".join(["python benchmarks/run_all.py", *(shlex.quote(a) for a in without_trained(given))])
    runs = plan(args)
    splits = {name: get_protocol(name, seed=args.seed) for name in args.protocols}
    carried = reuse(args.reuse, splits, args.cache) if args.reuse else []
    trained = trained_runs(args.trained, args.out.with_suffix("") / "trained")
    records, failures, missing = [], [], []
    timed_bits = (None, reference_length(args.bits))  # forward time hardly depends on the code length

    def write_page() -> None:
        shown = records + carried_rows(carried, records, splits, tuple(args.bits), args.cache)
        write_results_page(shown, QUOTED, args.out, command, machine(), args.protocols, args.bits, splits,
                           trained)

    last_write = time.monotonic()
    bar = tqdm(runs, desc="runs", unit="run")
    for protocol, spec, bits in bar:
        bar.set_postfix_str(f"{protocol} {spec.name} {bits or ''}")
        try:
            if args.cached_only:
                record = cached_record(spec, splits[protocol], bits, args.mode, args.cache)
                if record is None:
                    missing.append(f"{protocol} {spec.name} {bits or ''}")
                    continue
            else:
                record = run_method(spec, protocol, bits, args.seed, args.mode, cache_dir=args.cache,
                                    timing=not args.no_timing and bits in timed_bits)
        except Exception as err:  # one failed run must not lose the others; it is reported at the end
            failures.append(f"{protocol} {spec.name} {bits}: {type(err).__name__}: {err}")
            tqdm.write(f"FAILED {failures[-1]}")
            continue
        records.append(record)
        f = record["figures"]
        tqdm.write(f"{protocol:18s} {spec.name:18s} {str(bits or '-'):>3s}  mAP@all {f['map_all']:.4f}  "
                   f"P@20 {f['precision_at_20']:.4f}  vote@8 {f['vote_accuracy_top8']:.4f}  "
                   f"train {record['times']['train_seconds']:.1f} s{'  (cached)' if record['cached'] else ''}")
        if time.monotonic() - last_write > PAGE_EVERY_S:
            write_page()
            last_write = time.monotonic()
    write_page()
    print(f"wrote {args.out} ({len(records)} runs{f'; {len(missing)} not in the cache yet' if missing else ''})")
    for failure in failures:
        print(f"failed: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
