"""``python -m hashseek``: the ``hashseek`` command where its script is not on PATH (a bare PYTHONPATH checkout)."""
import sys

from hashseek.cli import main

sys.exit(main())
