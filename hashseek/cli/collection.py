"""`hashseek index`, `reindex`, `search`, `classify`, `remove`, `info`, `check`: persistent collections."""
from __future__ import annotations

import argparse
import json
import secrets
from pathlib import Path

from hashseek.core.errors import InvalidInputError, NotFoundError

# flag dest -> keyword of Collection.create, which alone defines the defaults
_CREATE_SETTINGS = {"bits": "n_bits", "backbone": "backbone", "pooling": "pooling", "index": "index", "hasher": "hasher"}
UNTRAINED_SHOWN = 5   # labels a trained model never saw, named by `info` (the rest counted)


def cmd_index(args) -> int:
    from hashseek.core.hasher import load_image_hasher
    from hashseek.data.datasets import not_read_note
    from hashseek.search.collection import COLLECTION_JSON, Collection

    if not args.source.exists():
        raise NotFoundError(f"no such folder or archive: {args.source}")
    given = {keyword: getattr(args, dest) for dest, keyword in _CREATE_SETTINGS.items()
             if getattr(args, dest) is not None}
    if (args.collection / COLLECTION_JSON).is_file():
        flags = [f"--{'backend' if dest == 'index' else dest}" for dest in _CREATE_SETTINGS
                 if getattr(args, dest) is not None]
        flags += ["--model"] if args.model else []
        flags += [flag for flag, value in (("--milvus-uri", args.milvus_uri),
                                           ("--milvus-collection", args.milvus_collection)) if value]
        if flags:
            raise InvalidInputError(f"{args.collection} exists and keeps the settings it was made with; "
                                    f"drop {' '.join(flags)} (see `hashseek info`)")
        collection = Collection.open(args.collection, **_batch_size(args))
    else:
        image_hasher = load_image_hasher(args.model) if args.model else None
        collection = Collection.create(args.collection, image_hasher, **_batch_size(args),
                                       index_options=_index_options(args, given.get("index")), **given)
    with collection:
        report = collection.add_folder(args.source, progress=not args.quiet)
        print(f"{args.collection}: {report}; {len(collection)} images in the collection")
        for source, reason in report.failed[:10]:
            print(f"  unreadable: {source}: {reason}")
        note = not_read_note(report.not_images)
        if note:
            print(f"  {note}")
    return 0


def cmd_reindex(args) -> int:
    from hashseek.core.hasher import load_image_hasher
    from hashseek.search.collection import Collection

    if (args.model is None) == (not args.restore_previous):
        raise InvalidInputError("give one of --model RUN (a new model) and --restore-previous")
    with Collection.open(args.collection, **_batch_size(args)) as collection:
        if args.restore_previous:
            report = collection.restore_previous(progress=not args.quiet)
        else:
            report = collection.reindex(load_image_hasher(args.model), progress=not args.quiet)
        print(f"{args.collection}: {report}; {len(collection)} images in the collection")
        for source, reason in report.failed[:10]:
            print(f"  unreadable: {source}: {reason}")
    return 0


def _batch_size(args) -> dict:
    """--batch-size when given; otherwise the Collection's default."""
    return {} if args.batch_size is None else {"batch_size": args.batch_size}


def _index_options(args, backend: str | None) -> dict | None:
    """--milvus-uri / --milvus-collection for ``--backend milvus``; refused with any other backend."""
    if backend != "milvus":
        if args.milvus_uri or args.milvus_collection:
            raise InvalidInputError("--milvus-uri and --milvus-collection go with --backend milvus")
        return None
    if not args.milvus_uri:
        raise InvalidInputError("--backend milvus needs --milvus-uri (http://host:19530, or a milvus-lite file.db)")
    return {"uri": args.milvus_uri, **({"collection_name": args.milvus_collection} if args.milvus_collection else {})}


def _add_search_args(p: argparse.ArgumentParser, results: str) -> None:
    from hashseek.search.defaults import SEARCH_DEFAULTS as D

    candidates = (f"{100 * D.candidate_fraction:g}%% of the library, at least {D.min_candidates} and at most "
                  f"{D.max_candidates}; covering the whole library it is a linear float search")
    p.add_argument("collection", type=Path)
    p.add_argument("image", nargs="?", type=Path, help="query image file (or use --id / --random)")
    p.add_argument("--id", type=int, help="query by the id of a library image (left out of its own results)")
    p.add_argument("--random", action="store_true", help="query by a random library image (left out of its results)")
    p.add_argument("--seed", type=int, default=None,
                   help="seed of --random (default: a fresh one each time; the answer names it)")
    p.add_argument("-k", type=int, help=f"{results} (default {D.k if results == 'results' else D.vote_k})")
    p.add_argument("--rerank", metavar="DISTANCE",
                   help="re-rank Hamming candidates by float features: chi2, euclidean, manhattan, chebyshev, cosine, "
                        f"or none for Hamming ranking only (default {D.rerank or 'none'})")
    p.add_argument("--radius", type=int, help="Hamming radius: results (or candidates to re-rank) within it")
    p.add_argument("--candidates", type=int, help=f"top-M Hamming candidates to re-rank (default {candidates})")
    p.add_argument("--include-self", action="store_true",
                   help="keep library images with the query's exact bytes (sha256) in the results; by default "
                        "they are reported as self_match and left out")
    p.add_argument("--json", action="store_true")


def _query(args, collection) -> tuple[object, dict]:
    """Exactly one of IMAGE, --id N and --random: (the query, what to add to the result's query)."""
    given = [name for name, value in (("IMAGE", args.image), ("--id", args.id), ("--random", args.random or None))
             if value is not None]
    if len(given) != 1:
        raise InvalidInputError("give one query: an IMAGE, --id N or --random" +
                                (f" (got {' and '.join(given)})" if given else ""))
    if args.random:
        seed = secrets.randbelow(2**31) if args.seed is None else args.seed   # as the page's Random
        return collection.random_id(seed), {"random": seed}
    if args.image is not None and not args.image.is_file():
        raise NotFoundError(f"no such image file: {args.image}")
    return (args.image if args.image is not None else args.id), {}


def _search_options(args) -> dict:
    """The flags given; the rest keep the Collection's defaults (SEARCH_DEFAULTS)."""
    options = {"radius": args.radius, "candidates": args.candidates, "include_self": args.include_self or None}
    if args.rerank is not None:
        options["rerank"] = None if args.rerank.lower() == "none" else args.rerank
    return {key: value for key, value in options.items() if value is not None or key == "rerank"}


def cmd_search(args) -> int:
    from hashseek.search.collection import Collection
    from hashseek.search.distances import warm_up

    warm_up(background=True)   # the re-rank kernels load while the collection and its model open
    with Collection.open(args.collection, read_only=True) as collection:
        query, described = _query(args, collection)
        result = collection.search(query, args.k, **_search_options(args))
        result.query.update(described)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    linear = " (linear: every library image)" if result.linear else ""
    print(f"query {result.query}: {result.mode}, {result.n_candidates} candidates{linear}, "
          f"{1000 * result.timings['total']:.1f} ms")
    print(f"{'rank':>4} {'id':>7} {'hamming':>7} {'distance':>10}  label / name")
    for n, hit in enumerate(result.hits, 1):
        distance = "" if hit.distance is None else f"{hit.distance:.4g}"
        print(f"{n:>4} {hit.id:>7} {hit.hamming:>7} {distance:>10}  {hit.label} / {hit.name}")
    return 0


def cmd_classify(args) -> int:
    from hashseek.search.collection import Collection
    from hashseek.search.distances import warm_up

    warm_up(background=True)   # the re-rank kernels load while the collection and its model open
    with Collection.open(args.collection, read_only=True) as collection:
        query, described = _query(args, collection)
        result = collection.classify(query, args.k, method=args.method, **_search_options(args))
        result.neighbours.query.update(described)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    print(f"query {result.neighbours.query}: predicted {result.label} (by {result.method})")
    for name, shares in (("vote of the top-k neighbours", result.vote), ("the model's classifier", result.classifier)):
        if shares is not None:
            print(f"  {name}:")
            for label, share in list(shares.items())[:5]:
                print(f"    {share:6.1%}  {label}")
    return 0


def cmd_remove(args) -> int:
    from hashseek.search.collection import Collection

    with Collection.open(args.collection) as collection:
        removed = collection.remove(args.ids)
        print(f"removed {removed}; {len(collection)} images left")
    return 0


def cmd_info(args) -> int:
    from hashseek.search.collection import Collection

    with Collection.open(args.collection, read_only=True) as collection:
        info = collection.info()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    hasher = info["hasher"]
    print(f"{info['path']}: {info['images']} images ({info['removed']} removed, {info['not_searchable']} "
          f"not yet searchable), {len(info['classes'])} classes, {info['unlabelled']} unlabelled")
    method = hasher.get("hasher", {}).get("name") or "+".join(filter(None, (hasher.get("head"), hasher.get("loss"))))
    made_by = " ".join(filter(None, (hasher.get("type"), hasher.get("backbone"), method)))
    print(f"  codes {info['n_bits']} bits from {made_by}, index {info['index']}, features {info['feature_dim']}-d")
    if untrained := info["untrained_classes"]:
        names = ", ".join(f"{label} ({count})" for label, count in sorted(untrained.items())[:UNTRAINED_SHOWN])
        more = f" and {len(untrained) - UNTRAINED_SHOWN} more" if len(untrained) > UNTRAINED_SHOWN else ""
        print(f"  {len(untrained)} of the {len(info['classes'])} labels had no training images in the model: "
              f"{names}{more}; their codes and vote rest on what it learned of other classes (`hashseek train "
              f"{info['path']} --out RUN` trains on the library's own labels)")
    if info.get("index_options"):
        print("  index options: " + ", ".join(f"{k}={v}" for k, v in info["index_options"].items()))
    if (fit := info.get("fit")) is not None:
        print(f"  hasher {_fit_line(fit)}")
    per_image = info["bytes_on_disk"] / max(info["images"], 1)
    print(f"  {info['bytes_on_disk'] / 1e6:.1f} MB on disk ({per_image:.0f} bytes per image), created {info['created']}")
    return 0


def _fit_line(fit: dict) -> str:
    """When and on what a zero-training hasher was fitted, and when its refit policy refits next."""
    policy = (f"refits at {fit['next_refit_at']} images (policy: a settled fit at {fit['policy']['min_images']}, "
              f"then at each x{fit['policy']['growth']:g} growth; `hashseek refit` by hand)")
    if fit["images"] is None:
        return f"not fitted yet; {policy}"
    when = f" at {fit['fitted_at']}" if fit["fitted_at"] else ""
    provisional = ", provisional" if fit["provisional"] else ""
    return f"fitted on {fit['images']} images ({fit['sampled']} sampled){when}{provisional}; {policy}"


def cmd_check(args) -> int:
    """Read-only unless --repair; exit 0 when the collection is (now) sound, 1 when problems remain."""
    from hashseek.search.collection import Collection

    with Collection.open(args.collection, read_only=not args.repair, damaged_ok=True) as collection:
        report = collection.repair(progress=not args.quiet) if args.repair else collection.check()
    print(report)
    return 0 if report.ok else 1


def register(sub) -> None:
    p = sub.add_parser("index", help="add a folder or archive of images to a collection (created if missing)")
    p.add_argument("source", type=Path, help="folder (one sub-folder per class) or tar archive")
    p.add_argument("--collection", "-c", type=Path, required=True)
    p.add_argument("--model", type=Path, help="a saved image hasher (trained model) instead of pretrained + ITQ")
    p.add_argument("--bits", type=int, help="code length of a new collection (default: Collection.create's)")
    p.add_argument("--backbone", help="pretrained backbone of a new collection (default: Collection.create's)")
    p.add_argument("--hasher", help="shallow hasher of a new collection (default: Collection.create's)")
    p.add_argument("--pooling", help="aggregation of the backbone's conv map for a new zero-training collection: "
                                     "avg, spoc, mac, gem, rmac, crow, netvlad (default: the backbone's own pooled vector)")
    p.add_argument("--backend", "--index", dest="index", metavar="BACKEND",
                   help="index backend of a new collection: flat, hash, multihash, ivf (FAISS, in the collection "
                        "directory) or milvus (codes in a Milvus collection; needs --milvus-uri) "
                        "(default: Collection.create's)")
    p.add_argument("--milvus-uri", metavar="URI",
                   help="--backend milvus: http[s]://host:19530, or a milvus-lite file.db (stored absolute); "
                        "the token comes from HASHSEEK_MILVUS_TOKEN and is never stored")
    p.add_argument("--milvus-collection", metavar="NAME",
                   help="--backend milvus: Milvus collection name (default: the directory name + a random suffix)")
    p.add_argument("--batch-size", type=int, help="images encoded per batch (default: the Collection's)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("reindex", help="re-encode a collection's images with another model, swapped in atomically "
                                       "at the end (resumable; the old model stays restorable)")
    p.add_argument("collection", type=Path)
    p.add_argument("--model", type=Path, help="the new model: a trained model's folder (or a saved image hasher)")
    p.add_argument("--restore-previous", action="store_true",
                   help="swap the model the last reindex replaced back in instead")
    p.add_argument("--batch-size", type=int, help="images encoded per batch (default: the Collection's)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_reindex)

    from hashseek.search.defaults import SEARCH_DEFAULTS

    p = sub.add_parser("search", help="search a collection by an image, a library id or at random")
    _add_search_args(p, "results")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("classify", help="classify an image: the vote of its neighbours in a collection, and the "
                                        "model's own classifier when it has one")
    _add_search_args(p, "neighbours that vote")
    p.add_argument("--method", choices=["vote", "classifier"],
                   help=f"which prediction is the label: the neighbours' vote or the model's own classifier "
                        f"(default {SEARCH_DEFAULTS.classify}; the vote for a model without a classifier)")
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser("remove", help="remove images from a collection by id")
    p.add_argument("collection", type=Path)
    p.add_argument("ids", type=int, nargs="+")
    p.set_defaults(func=cmd_remove)

    p = sub.add_parser("info", help="what a collection holds and how it was made")
    p.add_argument("collection", type=Path)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("check", help="verify a collection's index, metadata and features agree (read-only)")
    p.add_argument("collection", type=Path)
    p.add_argument("--repair", action="store_true",
                   help="rebuild what can be rebuilt: lost or wrong feature rows re-encoded from the stored copies or "
                        "source files, partial rows and orphaned files dropped, the index rebuilt; says what it "
                        "could not recover")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_check)
