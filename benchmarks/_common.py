"""What every benchmark records beside its figures: the machine and the software."""
from __future__ import annotations

import json
from pathlib import Path

from hashseek.eval.cost import machine  # noqa: F401  (re-exported for the scripts)


def write_json(path: str | Path, payload: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path
