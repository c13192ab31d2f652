"""What every benchmark records beside its figures: the machine and the software."""
from __future__ import annotations

import json
from pathlib import Path

from hashseek.core.atomic import atomic_write_text
from hashseek.eval.cost import machine  # noqa: F401  (re-exported for the scripts)


def write_json(path: str | Path, payload: dict) -> Path:
    """A benchmark's record, written atomically (an interrupted run leaves the previous record whole)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, json.dumps(payload, indent=2) + "\n")
