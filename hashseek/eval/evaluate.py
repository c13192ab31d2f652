"""Evaluate a trained model on a protocol's test split, through the one evaluator (``hashseek.train.evaluator``)."""
from __future__ import annotations

from hashseek.data.datasets import ImageDataset
from hashseek.data.protocols import Protocol
from hashseek.models.hash_model import HashModel
from hashseek.train.evaluator import evaluate_split


def evaluate_model(model: HashModel, dataset: ImageDataset, protocol: Protocol, progress: bool = True) -> dict:
    """Test figures: the protocol's queries searching its database (Hamming ranking, ties by database order);
    unreadable images are listed under ``dropped``."""
    record = evaluate_split(model, dataset, protocol.query, protocol.database, progress=progress,
                            leave_one_out=protocol.leave_one_out)
    return {"protocol": protocol.name, "seed": protocol.seed, "split_sizes": protocol.sizes(), "bits": model.n_bits,
            **model.describe(), **record.to_dict()}
