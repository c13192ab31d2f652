"""Extract a protocol's frozen backbone maps once, part by part, into the hashseek feature cache.

Each part (train, validation, query, database) is cached under its own id list, the keys the
trainer (train, validation) and the evaluator (query, database) ask for, so training and
evaluating on frozen maps afterwards never run the backbone again, and no image is encoded
twice. The maps are the backbone's native input (EfficientNet-Lite0: 224 px, 1280x7x7 float16,
125 KB an image; CIFAR-10's 60,000 are 7.5 GB): frozen training has no input-size setting, and
the results pages' rows use the same. The pooled vector of a zero-training row is the maps'
spatial mean (what the backbone's global average pool computes).

    nice python benchmarks/protocol_maps.py --protocol cifar10
"""
from __future__ import annotations

import argparse
import time

from hashseek.data.named import load_dataset
from hashseek.data.protocols import get_protocol, protocol_dataset
from hashseek.models.features import BackboneEncoder, FeatureSet, extract_features

PARTS = ("train", "validation", "query", "database")


def protocol_maps(name: str, seed: int = 0, backbone: str = "efficientnet_lite0", parts: tuple = PARTS,
                  progress: bool = True) -> dict[str, FeatureSet]:
    """Part name -> memory-mapped maps of that part's images, in the protocol's order."""
    dataset = load_dataset(protocol_dataset(name))
    protocol = get_protocol(name, dataset, seed=seed)
    encoder = BackboneEncoder(backbone, kind="map")
    return {part: extract_features(dataset, getattr(protocol, part), encoder=encoder, progress=progress)
            for part in parts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--protocol", default="cifar10")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start = time.perf_counter()
    parts = protocol_maps(args.protocol, args.seed)
    for part, maps in parts.items():
        print(f"{part}: {maps.features.shape} {maps.meta.get('n_failed', 0)} unreadable")
    print(f"done in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
