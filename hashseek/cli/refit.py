"""`hashseek refit`: fit a zero-training collection's hasher again on the whole library, by hand."""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path


def cmd_refit(args) -> int:
    from hashseek.search.collection import Collection

    with Collection.open(args.collection) as collection:
        report = collection.refit()
        next_at = collection.refit_policy.next_fit_at(report.images)
    if args.json:
        print(json.dumps({**asdict(report), "next_refit_at": next_at}, indent=2))
    else:
        print(f"{args.collection}: {report}; the refit policy refits next at {next_at} images")
    return 0


def register(sub) -> None:
    p = sub.add_parser("refit", help="fit a zero-training collection's hasher again on all its images and "
                                     "recompute every code from the stored features (atomic; no image is decoded)")
    p.add_argument("collection", type=Path)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_refit)
