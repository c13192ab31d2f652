"""`hashseek duplicates`: groups of exact and near-duplicate images in a collection, with a keeper each."""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

CSV_FIELDS = ["group", "action", "id", "name", "label", "hamming", "distance", "same_bytes", "width", "height",
              "added_at"]


def cmd_duplicates(args) -> int:
    from hashseek.search.collection import Collection

    with Collection.open(args.collection, read_only=True) as collection:   # reads only: no lock taken
        report = collection.duplicates(args.max_hamming, args.max_distance, args.min_similarity)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    elif args.csv:
        writer = csv.DictWriter(sys.stdout, CSV_FIELDS, lineterminator="\n")
        writer.writeheader()
        for n, group in enumerate(report.groups, 1):
            for m in group.members:
                writer.writerow({"group": n, "action": "keep" if m.id == group.keeper else "remove", "id": m.id,
                                 "name": m.name, "label": m.label or "", "hamming": "" if m.hamming is None else
                                 m.hamming, "distance": f"{m.distance:.4f}", "same_bytes": int(m.same_bytes),
                                 "width": m.width or "", "height": m.height or "", "added_at": f"{m.added_at:.3f}"})
    else:
        print(f"{args.collection}: {report} in {report.seconds:.2f} s")
        for n, group in enumerate(report.groups, 1):
            print(f"group {n} ({group.kind}, {len(group.members)} images):")
            for m in group.members:
                size = f"{m.width}x{m.height}" if m.width else "size unknown"
                how = ("keep" if m.id == group.keeper else
                       "same bytes" if m.same_bytes else f"Hamming {m.hamming}, cosine {m.distance:.3f}")
                print(f"  {m.id:>7}  {m.name}  [{m.label or '-'}]  {size}  {how}")
        if report.groups:
            print("remove the others of a group with: hashseek remove COLLECTION ID ...")
    return 0


def register(sub) -> None:
    from hashseek.search.duplicates import DUPLICATE_DEFAULTS as D

    p = sub.add_parser("duplicates", help="groups of exact and near-duplicate images (resized, re-compressed, "
                                          "cropped, brightened, rotated copies), each with a suggested keeper")
    p.add_argument("collection", type=Path)
    p.add_argument("--max-hamming", type=int, metavar="R",
                   help=f"codes at most R bits apart are candidates (default {D.max_hamming})")
    p.add_argument("--max-distance", type=float, metavar="D",
                   help=f"candidates whose features are within cosine distance D are kept "
                        f"(default {D.max_distance:g})")
    p.add_argument("--min-similarity", type=float, metavar="S",
                   help=f"... and whose pictures line up with a correlation of at least S (-1..1; default "
                        f"{D.min_similarity:g})")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="the whole report as JSON")
    out.add_argument("--csv", action="store_true", help="one row per image: group, keep/remove, distances")
    p.set_defaults(func=cmd_duplicates)
