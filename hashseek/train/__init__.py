"""The one trainer: frozen-feature or fine-tuning runs for any head and loss, selected on validation images."""
from hashseek.models.hash_model import HashModel, load_model
from hashseek.train.config import TrainConfig, TrainResult
from hashseek.train.evaluator import EvalRecord, evaluate_split
from hashseek.train.trainer import Trainer

__all__ = ["EvalRecord", "HashModel", "TrainConfig", "TrainResult", "Trainer", "evaluate_split", "load_model"]
