"""HEIF/HEIC photos (an iPhone's default format) through pillow-heif, when it is installed (the ``heif``
extra): importing this module registers its Pillow opener, so every decoder of the package reads them."""
from __future__ import annotations

HEIF_EXTENSIONS = frozenset({".heic", ".heif"})
HEIF_HINT = "install the heif extra to read them: pip install 'hashseek[heif]' (adds pillow-heif)"

try:
    import pillow_heif
except ImportError:   # optional: without it .heic files are listed as not read, with HEIF_HINT
    HEIF_READABLE = False
else:
    pillow_heif.register_heif_opener()
    HEIF_READABLE = True

__all__ = ["HEIF_EXTENSIONS", "HEIF_HINT", "HEIF_READABLE"]
