"""`hashseek sync`: keep a collection in step with a folder, once or (--watch) as it changes."""
from __future__ import annotations

import sys
from pathlib import Path

from hashseek.core.errors import InvalidInputError

_SHOWN = 10   # files listed per kind of change; the counts cover all


def _print_report(collection_path: Path, report, n_images: int, verbose: bool) -> None:
    t = report.timings
    print(f"{collection_path}: {report}; {n_images} images in the collection "
          f"(walk {t['walk']:.2f} s, hash {t['hash']:.2f} s, encode {t['encode']:.2f} s, total {t['total']:.2f} s)")
    kinds = [("added", report.added), ("updated", report.updated), ("removed", report.removed),
             ("relabelled", report.relabelled), ("vanished", report.vanished)]
    for kind, sources in kinds if verbose else []:
        for source in sources[:_SHOWN]:
            print(f"  {kind}: {source}")
        if len(sources) > _SHOWN:
            print(f"  ... and {len(sources) - _SHOWN} more {kind}")
    for source, reason in report.unreadable[:_SHOWN]:
        print(f"  unreadable: {source}: {reason}")
    sys.stdout.flush()


def cmd_sync(args) -> int:
    from hashseek.data.datasets import not_read_note
    from hashseek.search.collection import Collection
    from hashseek.search.sync import checked_folder

    if not args.watch and (args.debounce is not None or args.poll is not None):
        raise InvalidInputError("--debounce and --poll go with --watch")
    checked_folder(args.folder)   # a missing folder is said before the collection and its model open
    options = {"labels_from_folders": bool(args.labels_from_folders), "allow_empty": bool(args.allow_empty)}
    batch = {} if args.batch_size is None else {"batch_size": args.batch_size}
    with Collection.open(args.collection, **batch) as collection:
        last_note = [None]

        def show(report) -> None:
            _print_report(args.collection, report, len(collection), args.verbose_changes)
            note = not_read_note(report.not_images)
            if note and note != last_note[0]:   # said once while watching, again when it changes
                print(f"  {note}", flush=True)
            last_note[0] = note

        if not args.watch:
            show(collection.sync(args.folder, progress=not args.quiet, **options))
            return 0
        from hashseek.search.watch import watch

        def failed(err) -> None:
            print(f"hashseek: sync failed, still watching: {err}", file=sys.stderr, flush=True)

        mode = f"polling every {args.poll} s" if args.poll is not None else "on file events"
        print(f"watching {args.folder} ({mode}); Ctrl-C stops", flush=True)
        try:
            watch(collection, args.folder, debounce_s=args.debounce, poll_s=args.poll, polling=args.poll is not None,
                  on_sync=show, on_error=failed, progress=not args.quiet, **options)
        except KeyboardInterrupt:
            print("stopped", flush=True)
    return 0


def register(sub) -> None:
    p = sub.add_parser("sync", help="bring a collection in step with a folder: new files added, deleted ones removed, "
                                    "rewritten ones re-encoded (resumable; --watch keeps doing it)")
    p.add_argument("collection", type=Path)
    p.add_argument("folder", type=Path, help="folder of image files (any depth)")
    p.add_argument("--labels-from-folders", action="store_true", default=None,
                   help="the folder holding a file names its label (and files moved between folders are relabelled); "
                        "by default labels are left as they are and new files have none")
    p.add_argument("--allow-empty", action="store_true", default=None,
                   help="let a folder without images remove everything that came from it (refused by default: "
                        "an unmounted disk looks empty)")
    p.add_argument("--watch", action="store_true", default=None,
                   help="keep syncing as the folder changes (file events through watchdog, else polling); Ctrl-C stops")
    p.add_argument("--debounce", type=float, metavar="SECONDS",
                   help="--watch: quiet time after the last change before a sync (default: WatchConfig's)")
    p.add_argument("--poll", type=float, metavar="SECONDS",
                   help="--watch: poll every SECONDS instead of waiting for file events (network shares, whose "
                        "remote changes raise no local events)")
    p.add_argument("--batch-size", type=int, help="images encoded per batch (default: the Collection's)")
    p.add_argument("--list", dest="verbose_changes", action="store_true", default=None,
                   help=f"list the files added, updated, removed and relabelled (the first {_SHOWN} of each)")
    p.add_argument("--quiet", "-q", action="store_true", default=None, help="no progress bar")
    p.set_defaults(func=cmd_sync)
