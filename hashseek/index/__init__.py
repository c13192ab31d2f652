"""Binary code indexes."""
from hashseek.index.bits import binarize, hamming_distances, pack_bits, unpack_bits

__all__ = ["binarize", "hamming_distances", "pack_bits", "unpack_bits"]
