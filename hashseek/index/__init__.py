"""Binary code indexes: ``create_index(kind, n_bits)``, ``load_index(path)``.

Kinds: ``flat`` (exact FAISS scan, the default), ``numpy`` (reference), ``hash`` and
``multihash`` (bucket lookups), ``ivf`` (sublinear, approximate).
"""
from hashseek.core.bits import binarize, hamming_distances, pack_bits, unpack_bits
from hashseek.index.base import (INDEXES, MISSING_DISTANCE, BinaryIndex, create_index, load_index,
                                 storage_bytes)

# Each backend registers itself on import.
from hashseek.index import numpy_index, faiss_index, milvus_index  # noqa: E402,F401
from hashseek.index.faiss_index import FlatIndex, HashIndex, IVFIndex, MultiHashIndex, omp_threads  # noqa: E402
from hashseek.index.numpy_index import NumpyIndex  # noqa: E402


def list_indexes() -> list[str]:
    return INDEXES.names()


__all__ = ["INDEXES", "MISSING_DISTANCE", "BinaryIndex", "FlatIndex", "HashIndex", "IVFIndex",
           "MultiHashIndex", "NumpyIndex", "binarize", "create_index", "hamming_distances",
           "list_indexes", "load_index", "omp_threads", "pack_bits", "storage_bytes", "unpack_bits"]
