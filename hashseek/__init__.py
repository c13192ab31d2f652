"""hashseek: content-based image retrieval with deep hashing."""

__version__ = "0.1.0"
