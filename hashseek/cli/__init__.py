"""The ``hashseek`` command: a thin shell over the Python API, one module per command group."""
from __future__ import annotations

import argparse
import logging
import os
import sys

from hashseek.cli import calibrate, collection, data, duplicates, evaluate, refit, serve, sync, train
from hashseek.core.errors import HashseekError

COMMAND_GROUPS = [data, train, calibrate, collection, refit, sync, duplicates, evaluate, serve]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hashseek", description="Content-based image retrieval with deep hashing.")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in COMMAND_GROUPS:
        group.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return args.func(args)
    except HashseekError as err:
        print(f"hashseek: error: {err}", file=sys.stderr)
        return err.exit_code
    except BrokenPipeError:
        # the reader went away (``hashseek duplicates C --csv | head``): stop quietly, as other Unix tools do;
        # stdout is pointed at /dev/null so that Python's flush at exit does not raise again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (FileNotFoundError, ValueError, KeyError, ImportError) as err:
        # lower modules (hashers, heads, losses) still raise ~100 built-in ValueErrors for bad arguments;
        # until they are typed, the CLI reports those as user errors too (the service does not)
        print(f"hashseek: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
