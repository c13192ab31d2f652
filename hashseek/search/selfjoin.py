"""Every pair of codes within a Hamming radius, without comparing all pairs: multi-index hashing.

Split an ``n_bits`` code into ``radius + 1`` substrings: two codes within Hamming ``radius``
agree exactly on at least one of them (pigeonhole). For each substring the codes are sorted by
it; codes sharing a value form a bucket, every pair inside a bucket is a candidate, and the
candidates are verified on the whole code in numpy (XOR + popcount), a few million at a time.
A pair is kept only from the first substring it agrees on, so no pair comes twice.

The candidates a split yields are counted exactly (bucket sizes) before any is made; when they
would outnumber all pairs (a large radius on short substrings, or codes crowded on few
values), blocks of rows are compared with every later row instead, still vectorised.
Connected components of the verified pairs come from a vectorised union-find (pointer jumping).
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

CHUNK = 1 << 22          # candidate pairs verified at once (memory: ~100 bytes each)


def code_words(codes: np.ndarray) -> np.ndarray:
    """(n, n_bytes) uint8 packed codes as (n, words) uint64 (zero-padded) for XOR + popcount."""
    codes = np.ascontiguousarray(codes, dtype=np.uint8)
    pad = -codes.shape[1] % 8
    if pad:
        codes = np.concatenate([codes, np.zeros((len(codes), pad), np.uint8)], axis=1)
    return codes.view(np.uint64)


def hamming_of(words: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Hamming distances of the row pairs (i, j) of ``code_words``."""
    if words.shape[1] == 1:
        return np.bitwise_count(words[i, 0] ^ words[j, 0]).astype(np.int16)
    return np.bitwise_count(words[i] ^ words[j]).sum(axis=1, dtype=np.int16)


def substring_keys(codes: np.ndarray, n_bits: int, parts: int) -> np.ndarray:
    """(parts, n) uint64: the value of each of ``parts`` contiguous, near-equal bit ranges of the codes
    (bit 0 is the first byte's high bit, as ``np.packbits`` packs them)."""
    bounds = np.linspace(0, n_bits, parts + 1).round().astype(int)
    if np.any(np.diff(bounds) > 63) or np.any(np.diff(bounds) < 1):
        raise ValueError(f"cannot split {n_bits} bits into {parts} substrings of 1..63 bits")
    big = code_words(codes).byteswap()   # each word's first byte in its high bits: bit p at 63 - p % 64
    keys = np.empty((parts, len(codes)), np.uint64)
    for p, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        word, low = divmod(a, 64)
        value = big[:, word] << np.uint64(low)             # bits a.. at the top of the word
        if low and (b - 1) // 64 > word:                     # the range runs on into the next word
            value |= big[:, word + 1] >> np.uint64(64 - low)
        keys[p] = value >> np.uint64(64 - (b - a))
    return keys


def _followers(sorted_keys: np.ndarray) -> np.ndarray:
    """For each position of a sorted array: how many later positions hold the same value."""
    n = len(sorted_keys)
    ends = np.append(np.flatnonzero(np.diff(sorted_keys)) + 1, n)
    return ends[np.searchsorted(ends, np.arange(n), side="right")] - np.arange(n) - 1


def _bucket_pairs(order: np.ndarray, followers: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Every pair inside a bucket, as (rows, rows), about ``CHUNK`` at a time (a big bucket is split too)."""
    cumulative, start = np.cumsum(followers), 0
    while start < len(order):
        done = cumulative[start - 1] if start else 0
        stop = max(start + 1, int(np.searchsorted(cumulative, done + CHUNK, side="right")))
        counts = followers[start:stop]
        total = int(counts.sum())
        if total:
            left = np.repeat(np.arange(start, stop), counts)
            first = np.repeat(np.cumsum(counts) - counts, counts)
            yield order[left], order[left + 1 + (np.arange(total) - first)]
        start = stop


def candidate_count(keys: np.ndarray) -> int:
    """Candidates the substring buckets of ``keys`` (parts, n) would yield, duplicates across parts included."""
    total = 0
    for part in keys:
        counts = np.unique(part, return_counts=True)[1].astype(np.int64)
        total += int((counts * (counts - 1) // 2).sum())
    return total


def hamming_pairs(codes: np.ndarray, radius: int, n_bits: int | None = None,
                  stats: dict | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs (i < j) of rows of ``codes`` (n, n_bytes) packed within Hamming ``radius``:
    (i, j, distance) sorted by (i, j). ``stats``, when given, receives the method and candidate count."""
    codes = np.ascontiguousarray(codes, dtype=np.uint8)
    n = len(codes)
    n_bits = codes.shape[1] * 8 if n_bits is None else int(n_bits)
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    words = code_words(codes)
    parts = min(radius + 1, n_bits)
    keys = substring_keys(codes, n_bits, parts) if n >= 2 and n_bits // parts <= 63 else None
    all_pairs = n * (n - 1) // 2
    candidates = candidate_count(keys) if keys is not None else all_pairs + 1
    use_buckets = candidates <= all_pairs
    if stats is not None:
        stats.update(method=f"multi-index hashing ({parts} substrings)" if use_buckets else "blocked all pairs",
                     candidates=candidates if use_buckets else all_pairs)
    found = _bucket_join(words, keys, radius) if use_buckets else _block_join(words, radius)
    if found:
        i, j, d = (np.concatenate(column) for column in zip(*found))
    else:
        i, j, d = np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int16)
    order = np.lexsort((j, i))
    return i[order], j[order], d[order]


def _bucket_join(words: np.ndarray, keys: np.ndarray, radius: int) -> list[tuple]:
    found = []
    for p, part in enumerate(keys):
        order = np.argsort(part, kind="stable")
        for a, b in _bucket_pairs(order, _followers(part[order])):
            d = hamming_of(words, a, b)
            keep = d <= radius
            a, b, d = a[keep], b[keep], d[keep]
            for earlier in keys[:p]:   # found already where an earlier substring agrees
                fresh = earlier[a] != earlier[b]
                a, b, d = a[fresh], b[fresh], d[fresh]
            found.append((np.minimum(a, b), np.maximum(a, b), d))
    return found


def _block_join(words: np.ndarray, radius: int) -> list[tuple]:
    n, found = len(words), []
    rows = max(1, CHUNK // max(n, 1))
    for start in range(0, n - 1, rows):
        block = words[start:start + rows]
        d = np.bitwise_count(block[:, None, :] ^ words[None, start:, :]).sum(axis=2, dtype=np.int16)
        a, b = np.nonzero(d <= radius)
        keep = b > a   # column b is row start + b: only later rows
        a, b = a[keep], b[keep]
        found.append((a + start, b + start, d[a, b]))
    return found


def components(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Union-find over the edges (i, j) of ``n`` nodes: each node's component, named by its smallest node."""
    parent = np.arange(n)
    i, j = np.asarray(i, np.int64), np.asarray(j, np.int64)
    while True:
        low = np.minimum(parent[i], parent[j])
        before = parent.copy()
        np.minimum.at(parent, parent[i], low)   # hook each root under the smaller one
        np.minimum.at(parent, parent[j], low)
        while True:                              # compress: point every node at its root
            jumped = parent[parent]
            if np.array_equal(jumped, parent):
                break
            parent = jumped
        if np.array_equal(parent, before):
            return parent
