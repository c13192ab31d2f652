"""Evaluate hashing models and shallow hashers on a protocol with Hamming ranking."""
from __future__ import annotations

import time
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from hashseek.data.datasets import ImageDataset
from hashseek.data.loader import iter_batches
from hashseek.data.protocols import Protocol
from hashseek.eval.retrieval import retrieval_report
from hashseek.core.bits import hamming_distances
from hashseek.models.features import BackboneEncoder, extract_features
from hashseek.models.hash_model import HashModel


def encode_dataset(model: HashModel, dataset: ImageDataset, ids: Sequence[str],
                   progress: bool = True) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(kept ids, packed codes, float features) for ``ids``; unreadable images are dropped.

    A model trained on frozen features reuses the cached backbone maps and runs only its head
    (unless it averages with mirrored images, whose maps are not cached).
    """
    if model.config.get("mode") == "frozen" and not model.mirror_average:
        maps = extract_features(dataset, ids, encoder=BackboneEncoder(model.backbone, kind="map"), progress=progress)
        codes, feats = model.encode_maps(maps.features)
        return maps.ids, codes, feats
    kept, codes, feats = [], [], []
    bar = tqdm(total=len(ids), desc="encode", unit="img", disable=not progress)
    for batch in iter_batches(list(ids), dataset.read_bytes, model.preprocess):
        if batch.ids:
            c, f = model.encode_arrays(batch.inputs)
            kept += batch.ids
            codes.append(c)
            feats.append(f)
        bar.update(len(batch.ids) + len(batch.failed))
    bar.close()
    return kept, np.concatenate(codes), np.concatenate(feats)


def evaluate_codes(query_codes: np.ndarray, db_codes: np.ndarray, query_labels: np.ndarray,
                   db_labels: np.ndarray, **report_kw) -> dict:
    """Hamming ranking (ties by database order) -> retrieval report, with the query time."""
    t0 = time.perf_counter()
    distances = hamming_distances(query_codes, db_codes)
    seconds = time.perf_counter() - t0
    report = retrieval_report(distances, query_labels, db_labels, **report_kw)
    report["hamming_ms_per_query"] = 1000 * seconds / max(1, len(query_codes))
    return report


def evaluate_model(model: HashModel, dataset: ImageDataset, protocol: Protocol, progress: bool = True) -> dict:
    needed = sorted(set(protocol.query) | set(protocol.database))
    ids, codes, _ = encode_dataset(model, dataset, needed, progress)
    row = {i: n for n, i in enumerate(ids)}
    q = [row[i] for i in protocol.query if i in row]
    d = [row[i] for i in protocol.database if i in row]
    labels = dataset.labels(ids)
    report = evaluate_codes(codes[q], codes[d], labels[q], labels[d])
    return {"protocol": protocol.name, "seed": protocol.seed, "sizes": protocol.sizes(), "bits": model.n_bits,
            "tie_rule": "database order", **model.describe(), **report}
