"""The one trainer: frozen-feature or fine-tuning runs for any head and loss."""
from hashseek.models.hash_model import HashModel, load_model
from hashseek.train.trainer import TrainConfig, Trainer, TrainResult

__all__ = ["HashModel", "TrainConfig", "TrainResult", "Trainer", "load_model"]
