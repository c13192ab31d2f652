"""Self-join speed: every pair of 64-bit codes within Hamming 3 among 1,000,000 random codes plus planted
near-duplicates, by the multi-index hashing of ``hashseek.search.selfjoin`` (4 substrings of 16 bits).

1,000,000 uniform random codes (seed 0); ``--planted`` of them (drawn without replacement) get a copy
with 1, 2 or 3 distinct bits flipped (a third each), appended. Checked: every planted pair is found,
every pair found is within the radius (recomputed), and on a random subset of ``--check`` codes the
join equals a blocked all-pairs comparison. Peak memory is the process's peak resident set
(``ru_maxrss``) beside its size before the join.

    python benchmarks/selfjoin_speed.py
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, write_json  # noqa: E402

from hashseek.search.selfjoin import _block_join, code_words, hamming_of, hamming_pairs  # noqa: E402


def rss_mib() -> float:
    """Current resident set size (MiB) from /proc."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def planted_codes(n: int, planted: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(codes (n + planted, 8) uint8, planted pairs (planted, 2) rows, their Hamming distances)."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 256, (n, 8), dtype=np.uint8)
    base = rng.choice(n, planted, replace=False)
    flips = np.arange(planted) % 3 + 1
    copies = codes[base].copy()
    bits = np.unpackbits(copies, axis=1)
    for k in (1, 2, 3):
        rows = np.flatnonzero(flips == k)
        cols = np.argsort(rng.random((len(rows), 64)), axis=1)[:, :k]
        bits[rows[:, None], cols] ^= 1
    copies = np.packbits(bits, axis=1)
    return np.concatenate([codes, copies]), np.stack([base, n + np.arange(planted)], axis=1), flips


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--codes", type=int, default=1_000_000)
    parser.add_argument("--planted", type=int, default=10_000)
    parser.add_argument("--radius", type=int, default=3)
    parser.add_argument("--check", type=int, default=30_000, help="codes of the all-pairs cross-check")
    parser.add_argument("--out", type=Path, default=Path("docs/bench/selfjoin_speed.json"))
    args = parser.parse_args(argv)

    codes, planted, flips = planted_codes(args.codes, args.planted, seed=0)
    before = rss_mib()
    stats: dict = {}
    start = time.perf_counter()
    i, j, d = hamming_pairs(codes, args.radius, 64, stats)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{len(i)} pairs within {args.radius} among {len(codes):,} codes in {seconds:.1f} s "
          f"({stats['method']}, {stats['candidates']:,} candidates); peak RSS {peak:.0f} MiB", file=sys.stderr)

    found = set(zip(i.tolist(), j.tolist()))
    missed = [tuple(p) for p in planted.tolist() if tuple(p) not in found]
    words = code_words(codes)
    wrong = int((hamming_of(words, i, j) != d).sum() + (d > args.radius).sum())
    subset = np.sort(np.random.default_rng(1).choice(len(codes), args.check, replace=False))
    sub = codes[subset]
    fast = hamming_pairs(sub, args.radius, 64)
    reference = [np.concatenate(a) for a in zip(*_block_join(code_words(sub), args.radius))]
    order = np.lexsort((reference[1], reference[0]))
    agree = all(np.array_equal(f, r[order]) for f, r in zip(fast, reference))
    payload = {
        "command": "python benchmarks/selfjoin_speed.py", "machine": machine(),
        "data": f"{args.codes:,} uniform random 64-bit codes (seed 0) + {args.planted:,} planted copies with 1, 2 "
                "or 3 bits flipped (a third each)",
        "radius": args.radius, "codes": len(codes), "method": stats["method"], "candidates": stats["candidates"],
        "pairs_found": len(i), "planted_pairs": args.planted, "planted_missed": len(missed),
        "pairs_beyond_radius_or_misreported": wrong, "seconds": seconds,
        "found_by_distance": {int(k): int((d == k).sum()) for k in range(args.radius + 1)},
        "rss_before_join_mib": before, "peak_rss_mib": peak,
        "cross_check": {"codes": args.check, "pairs": len(fast[0]), "equal_to_all_pairs": bool(agree)},
        "bar": {"max_seconds": 60, "met": bool(seconds <= 60 and not missed and not wrong and agree)},
    }
    write_json(args.out, payload)
    print({k: payload[k] for k in ("seconds", "pairs_found", "planted_missed", "peak_rss_mib", "cross_check", "bar")})


if __name__ == "__main__":
    main()
