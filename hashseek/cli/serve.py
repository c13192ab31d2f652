"""`hashseek serve`: the web page and REST API over one or more collections."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from hashseek.core.errors import InvalidInputError
from hashseek.service.config import SERVICE_DEFAULTS

API_KEY_HELP = """\
Writes (adding and removing images) and the API key:
  On 127.0.0.1 / localhost without a key, anyone on this machine may write. With a key, every write
  needs the header "X-API-Key: KEY". On any other address without a key, writes are disabled.
  Give the key in one of three ways:
    --api-key KEY         visible to other users in the process list: for trials only
    --api-key-file FILE   the file's text, surrounding whitespace (the final newline) removed
    HASHSEEK_API_KEY=KEY  the environment variable, used when neither flag is given
  An empty or blank key refuses to start (an unset variable expanded to "" would otherwise open
  writes to anyone). Keys are compared in constant time (secrets.compare_digest), so response
  times say nothing about a guessed key.
"""


def api_key(args) -> str | None:
    """The key from --api-key, --api-key-file or $HASHSEEK_API_KEY (in that order); None when none is given."""
    if args.api_key is not None and args.api_key_file is not None:
        raise InvalidInputError("give the API key by --api-key or by --api-key-file, not both")
    if args.api_key_file is not None:
        try:
            return args.api_key_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as err:
            raise InvalidInputError(f"cannot read the API key file {args.api_key_file}: {err}") from err
    return args.api_key if args.api_key is not None else os.environ.get("HASHSEEK_API_KEY")


def cmd_serve(args) -> int:
    import torch
    import uvicorn

    from hashseek.service.app import create_app

    names = [path.expanduser().resolve().name for path in args.collections]
    if len(set(names)) < len(names):
        raise InvalidInputError(f"collections are served by folder name, and these repeat one: {', '.join(names)}")
    # One request, one thread: the re-rank distances run in torch, whose idle worker threads spin and
    # made a 1,000-candidate chi2 re-rank 20x slower (600 ms) beside other work on a 2-core machine.
    torch.set_num_threads(1)
    max_upload = None if args.max_upload_mb is None else int(args.max_upload_mb * 2**20)
    app = create_app(dict(zip(names, args.collections)), api_key(args), host=args.host, warm_up=True,
                     max_upload_bytes=max_upload, max_pixels=args.max_pixels, max_decodes=args.max_decodes)
    if not app.state.guard.writable:
        print(f"hashseek: {args.host} is not a loopback address and no API key is set: adding and removing "
              "images is disabled", file=sys.stderr)
    print(f"serving {', '.join(names)} at http://{args.host}:{args.port}/ (API docs at /docs)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info" if args.verbose else "warning")
    return 0


def register(sub) -> None:
    p = sub.add_parser("serve", help="the web page and REST API over collections", epilog=API_KEY_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("collections", type=Path, nargs="+", help="collection folders, served under their folder names")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key", help="key that writes need in the X-API-Key header (see below)")
    p.add_argument("--api-key-file", type=Path, metavar="FILE", help="read the key from FILE (see below)")
    p.add_argument("--max-upload-mb", type=float,
                   help=f"largest request body (default {SERVICE_DEFAULTS.max_upload_bytes / 2**20:g} MB); "
                        "larger ones get 413")
    p.add_argument("--max-pixels", type=int,
                   help=f"largest image, in pixels, read from its header before decoding (default "
                        f"{SERVICE_DEFAULTS.max_pixels:,}); larger ones get 422")
    p.add_argument("--max-decodes", type=int,
                   help=f"images decoded at once (default {SERVICE_DEFAULTS.max_decodes}); each may briefly hold "
                        "its full-size pixels, so this bounds the memory of a burst of uploads")
    p.set_defaults(func=cmd_serve)

