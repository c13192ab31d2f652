"""Training runs on a collection's own labels, switching the collection to a run's model and back (guarded writes)."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request

from hashseek.core.errors import ConflictError
from hashseek.service.dependencies import LibraryDep, WriteAllowed
from hashseek.service.model_switch import Restoring
from hashseek.service.schemas import NOT_FOUND, WRITE, Error
from hashseek.service.training import JOB_ID, TrainingJobs
from hashseek.service.training_schemas import RestoreOut, TrainingJobOut, TrainingRequest

router = APIRouter(prefix="/api/collections/{name}", tags=["training"], responses=NOT_FOUND)
JobId = Annotated[str, Path(pattern=f"^{JOB_ID}$", description="the run's id (its folder under training/)")]
BUSY = {409: {"model": Error, "description": "another run of this collection is under way or being applied, "
                                               "or its previous model is being restored"}}


def _jobs(request: Request) -> TrainingJobs:
    return request.app.state.training


@router.get("/training", response_model=list[TrainingJobOut])
async def list_runs(request: Request, library: LibraryDep) -> list[dict]:
    """The collection's training runs, newest first (at most 20)."""
    return [job.status() for job in _jobs(request).list(library)]


@router.post("/training", response_model=TrainingJobOut, status_code=202, responses={**WRITE, **BUSY},
             dependencies=[WriteAllowed])
async def start_run(request: Request, library: LibraryDep, body: TrainingRequest) -> dict:
    """Start ``hashseek train`` on the collection's labelled images (a seeded split: training, validation
    for the epoch's selection, test queries for the report) with a recipe; follow it with GET."""
    classes = (await library.run(library.collection.info))["classes"]
    if len(classes) < 2:
        raise ConflictError(f"training needs labelled images of at least 2 classes; {library.name!r} has "
                            f"{len(classes)} label{'' if len(classes) == 1 else 's'}: label its images first")
    return _jobs(request).start(library, body.recipe, body.settings()).status()


@router.get("/training/{job_id}", response_model=TrainingJobOut)
async def get_run(request: Request, library: LibraryDep, job_id: JobId) -> dict:
    """State, epochs done with their loss and validation mAP, the output's last lines; once finished, the
    model's validation and test figures; once applied, the switch's progress."""
    return _jobs(request).get(library, job_id).status()


@router.post("/training/{job_id}/cancel", response_model=TrainingJobOut, responses={**WRITE, 409: BUSY[409]},
             dependencies=[WriteAllowed])
async def cancel_run(request: Request, library: LibraryDep, job_id: JobId) -> dict:
    return _jobs(request).cancel(library, job_id).status()


@router.post("/training/{job_id}/apply", response_model=TrainingJobOut, status_code=202,
             responses={**WRITE, **BUSY}, dependencies=[WriteAllowed])
async def apply_run(request: Request, library: LibraryDep, job_id: JobId) -> dict:
    """Switch the collection to the run's model: every library image is re-encoded in the background while
    searches and reads keep answering from the old model until the atomic swap; adding, removing, relabelling
    and refitting answer 409 until then. Follow it in the run's ``apply``."""
    return (await _jobs(request).apply(library, job_id)).status()


@router.delete("/training/{job_id}", status_code=204, responses={**WRITE, 409: {
    "model": Error, "description": "the run is under way or being applied, or its model is the collection's "
                                   "current or previous one"}}, dependencies=[WriteAllowed])
async def delete_run(request: Request, library: LibraryDep, job_id: JobId) -> None:
    """Delete a finished (failed, cancelled, interrupted) run and its folder; the run whose model the
    collection uses, or would bring back with a restore, is kept."""
    await _jobs(request).delete(library, job_id)


@router.post("/model/restore", response_model=RestoreOut, status_code=202, responses={**WRITE, **BUSY},
             dependencies=[WriteAllowed])
async def restore_model(request: Request, library: LibraryDep) -> dict:
    """Switch back to the model the last switch replaced, as an apply does: the images added since are
    encoded with it in the background while searches and reads keep answering from the current model
    until the atomic swap; adding, removing, relabelling and refitting answer 409 until then. A restore
    a server stop cut short is continued by the next. Follow it with GET."""
    return _out(await _jobs(request).restore(library))


@router.get("/model/restore", response_model=RestoreOut | None)
async def restore_status(request: Request, library: LibraryDep) -> dict | None:
    """The collection's last restore since the server started (null if none)."""
    return _out(_jobs(request).restoring(library))


def _out(restoring: Restoring | None) -> dict | None:
    return None if restoring is None else restoring.out()
