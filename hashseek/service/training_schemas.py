"""The JSON shapes of training runs and model switches (``routers/training.py``)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hashseek.train.recipes import list_recipes


class TrainingRequest(BaseModel):
    """A run on the collection's own labels: a recipe, and at most a few bounded settings of it
    (the rest are the recipe's; see ``hashseek train --help``)."""

    model_config = ConfigDict(extra="forbid")

    recipe: str = Field(description="fast: a hash head on frozen maps (minutes on a CPU); best: end-to-end "
                                    "fine-tuning (long on a CPU: bound it with max_minutes)")
    epochs: int | None = Field(None, ge=1, le=1000, strict=True, description="training epochs (the recipe's if not given)")
    warmup_epochs: int | None = Field(None, ge=0, le=1000, strict=True,
                                      description="fine-tuning: epochs of the head alone first")
    augment_copies: int | None = Field(None, ge=0, le=16, strict=True,
                                       description="frozen mode: seed-augmented copies of each training image")
    max_minutes: float | None = Field(None, gt=0, le=24 * 60, description="bound the run: the recipe sizes "
                                      "its epochs to fit, and the trainer stops before passing it")
    seed: int | None = Field(None, ge=0, le=2**31 - 1, strict=True, description="seed of the split and of training")

    @field_validator("recipe")
    @classmethod
    def _known_recipe(cls, value: str) -> str:
        if value not in list_recipes():
            raise ValueError(f"unknown recipe {value!r}; choose from {', '.join(list_recipes())}")
        return value

    def settings(self) -> dict:
        """The settings given, by their TrainConfig names."""
        return self.model_dump(exclude={"recipe"}, exclude_none=True)


class EpochOut(BaseModel):
    epoch: int = Field(description="epoch within its stage")
    stage: str = Field(description='"all", a staged head\'s stage, or "warmup-..." for a fine-tuning run\'s head warm-up')
    loss: float | None
    val_map: float | None = Field(description="validation mAP@all, when this epoch was validated")
    seconds: float | None = Field(description="since the run started")


class SearchedFigures(BaseModel):
    map_all: float | None
    precision_at_20: float | None
    vote_accuracy_top8: float | None


class Figures(BaseModel):
    map_all: float | None
    precision_at_20: float | None
    vote_accuracy_top8: float | None
    queries: int | None
    database: int | None
    searched: SearchedFigures | None = Field(None, description="the same queries as a collection of the model "
                                                               "answers them with the search defaults")


class ApplyOut(BaseModel):
    state: str = Field(description="applying | applied | failed")
    total: int = Field(description="library images to re-encode")
    encoded: int = Field(description="re-encoded so far")
    error: str | None


class TrainingJobOut(BaseModel):
    id: str
    recipe: str
    settings: dict = Field(description="the settings given on top of the recipe")
    state: str = Field(description="running | done | failed | cancelled | interrupted (the server stopped during it)")
    started_at: str
    finished_at: str | None
    error: str | None = Field(description="why the run failed")
    epochs: int = Field(description="epochs planned (warm-up included); a run may stop earlier on validation")
    epoch: int = Field(description="epochs done")
    stage: str | None
    loss: float | None = Field(description="training loss of the last epoch done")
    val_map: float | None = Field(description="the last validation mAP@all")
    best_val_map: float | None
    best_epoch: int | None = Field(description="position of the best validated epoch in history (1-based)")
    history: list[EpochOut]
    validation: Figures | None = Field(description="the kept model on the validation images, once finished")
    test: Figures | None = Field(description="the kept model on the held-out test queries, once finished")
    trained_at: str | None = Field(description="the model's time stamp (the collection's model names it once applied)")
    stopped: str | None = Field(description='why a finished run took fewer epochs than planned: "early" (no better '
                                            'validation mAP for a while) or "time" (max_minutes)')
    log_tail: list[str] = Field(description="the last lines the training printed")
    apply: ApplyOut | None = Field(description="the switch of the collection to this model, once asked for")


class RestoreOut(BaseModel):
    """The switch back to the previous model (the collection's info shows the model in use)."""

    state: str = Field(description="restoring | restored | failed")
    total: int = Field(description="library images the previous model needs codes for")
    encoded: int = Field(description="of them, coded so far (those kept from before the last switch included)")
    error: str | None
