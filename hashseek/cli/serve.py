"""`hashseek serve`: the web page and REST API over one or more collections."""
from __future__ import annotations

import os
import sys
from pathlib import Path


def cmd_serve(args) -> int:
    import torch
    import uvicorn

    from hashseek.service.app import create_app

    names = [path.expanduser().resolve().name for path in args.collections]
    if len(set(names)) < len(names):
        raise ValueError(f"collections are served by folder name, and these repeat one: {', '.join(names)}")
    # One request, one thread: the re-rank distances run in torch, whose idle worker threads spin and
    # made a 1,000-candidate chi2 re-rank 20x slower (600 ms) beside other work on a 2-core machine.
    torch.set_num_threads(1)
    app = create_app(dict(zip(names, args.collections)), args.api_key, host=args.host, warm_up=True)
    if not app.state.guard.writable:
        print(f"hashseek: {args.host} is not a loopback address and no --api-key is set: adding and removing "
              "images is disabled", file=sys.stderr)
    print(f"serving {', '.join(names)} at http://{args.host}:{args.port}/ (API docs at /docs)")
    uvicorn.run(app, host=args.host, port=args.port, log_level="info" if args.verbose else "warning")
    return 0


def register(sub) -> None:
    p = sub.add_parser("serve", help="the web page and REST API over collections")
    p.add_argument("collections", type=Path, nargs="+", help="collection folders, served under their folder names")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key", default=os.environ.get("HASHSEEK_API_KEY"),
                   help="key that adding and removing images need in the X-API-Key header (default: "
                        "$HASHSEEK_API_KEY); without one, writes are allowed on loopback only")
    p.set_defaults(func=cmd_serve)
