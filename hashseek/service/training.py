"""Training runs started from the page: ``hashseek train`` in a subprocess per run, and the switch of the
collection to a finished run's model.

A run lives in ``<collection>/training/<job id>/``, the ``--out`` folder of the CLI (the collection
directory is its source: its library images and their labels; the trainer opens it read-only, so the
server keeps serving it). Progress is what the trainer writes there after every epoch
(``loss_log.json``: loss, and validation mAP when it validated; a fine-tuning run's head warm-up
writes ``warmup/loss_log.json`` first); ``eval.json`` holds the finished model's figures. The
job's own record is ``job.json`` (recipe, settings, state), so the runs outlive the server.

One run per collection at a time. Applying a run reindexes the collection with its model while its
searches keep answering from the old one (``service.model_switch``); a restore swaps the replaced
model back the same way. A finished run can be deleted, unless its model is the collection's or the
one a restore brings back.
"""
from __future__ import annotations

import asyncio
import codecs
import logging
import os
import re
import secrets
import shutil
import subprocess
import sys
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import hashseek
from hashseek.core.atomic import atomic_write_json, atomic_write_text
from hashseek.core.errors import ConflictError, NotFoundError, ReadOnlyError
from hashseek.search.storage import os_error
from hashseek.service import model_switch
from hashseek.service.library import Library
from hashseek.service.model_switch import Applying, Restoring
from hashseek.service.training_runs import JOB_FILE, LOG_FILE, read_job, run_progress
from hashseek.train.recipes import RECIPES

log = logging.getLogger(__name__)

TRAINING_DIR = "training"
JOB_ID = r"[0-9]{8}-[0-9]{6}-[a-z]+-[0-9a-f]{4}"
KEPT_LINES = 400          # of the run's output, in memory and in train.log
TAIL_LINES = 30           # of those, in a job's status
CLI = "import sys; from hashseek.cli import main; sys.exit(main())"
# the page's bounded overrides -> the train CLI's flags
FLAGS = {"epochs": "--epochs", "warmup_epochs": "--warmup-epochs", "augment_copies": "--augment-copies",
         "max_minutes": "--max-minutes", "seed": "--seed"}


def planned_epochs(recipe: str, settings: dict) -> int:
    """Epochs the run will take unless it stops early: the recipe's, or the ones given (a fine-tuning
    recipe's head warm-up included)."""
    chosen = {**RECIPES.create(recipe), **settings}
    warmup = chosen.get("warmup_epochs", 0) if chosen.get("mode") == "finetune" else 0
    return int(chosen.get("epochs", 0)) + int(warmup or 0)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class RunOutput:
    """The run's stdout and stderr as lines; a progress bar's carriage returns rewrite its line."""

    def __init__(self) -> None:
        self.lines: deque[str] = deque(maxlen=KEPT_LINES)
        self.current = ""
        self.rewrite = False   # a carriage return came: the next text replaces the line (a bar's next state)

    def feed(self, text: str) -> None:
        for part in re.split(r"(\r|\n)", text):
            if part == "\n":
                self.lines.append(self.current)
                self.current, self.rewrite = "", False
            elif part == "\r":
                self.rewrite = True
            elif part:
                self.current = part if self.rewrite else self.current + part
                self.rewrite = False

    def tail(self, n: int = TAIL_LINES) -> list[str]:
        shown = [line.rstrip() for line in self.lines] + [self.current.rstrip()]
        return [line for line in shown if line.strip()][-n:]


@dataclass
class Job:
    """A training run of one collection (its subprocess, while this server runs it)."""

    id: str
    folder: Path
    record: dict                                  # job.json
    process: subprocess.Popen | None = None
    output: RunOutput = field(default_factory=RunOutput)
    cancelled: bool = False
    applying: Applying | None = None

    @property
    def state(self) -> str:
        return self.record["state"]

    def status(self) -> dict:
        """What the page shows: the state, the epochs with loss and validation mAP, the log's tail and,
        once finished, the model's figures."""
        tail = self.output.tail() if self.process is not None else _saved_tail(self.folder)
        apply = None if self.applying is None else self.applying.out()
        return {"id": self.id, **{k: self.record.get(k) for k in ("recipe", "settings", "state", "started_at",
                                                                    "finished_at", "error")},
                "epochs": self.record.get("epochs"), **run_progress(self.folder), "log_tail": tail, "apply": apply}

    def finish(self, returncode: int) -> None:
        """The subprocess ended: its state, its error, its output kept beside the model."""
        if self.cancelled:
            state, error = "cancelled", None
        elif returncode == 0:
            state, error = "done", None
        else:
            state, error = "failed", _error_line(self.output.tail(KEPT_LINES)) or f"training exited with {returncode}"
        self.record.update(state=state, error=error, finished_at=_now())
        try:
            atomic_write_text(self.folder / LOG_FILE, "\n".join(self.output.tail(KEPT_LINES)) + "\n")
            atomic_write_json(self.folder / JOB_FILE, self.record)
        except OSError as err:   # the state stays right in memory; the folder says "interrupted" after a restart
            log.warning("cannot record the end of training run %s: %s", self.folder, err)


def _error_line(lines: list[str]) -> str | None:
    """The CLI's own message ("hashseek: error: ..."), else a Python traceback's last line."""
    for line in reversed(lines):
        if line.startswith("hashseek: error:"):
            return line.removeprefix("hashseek: error:").strip()
    return lines[-1].strip() if lines else None


def _saved_tail(folder: Path) -> list[str]:
    try:
        return (folder / LOG_FILE).read_text(encoding="utf-8", errors="replace").splitlines()[-TAIL_LINES:]
    except OSError:
        return []


class TrainingJobs:
    """The training runs of the served collections: start, follow, cancel, apply; and restores."""

    def __init__(self) -> None:
        self._jobs: dict[tuple[str, str], Job] = {}
        self._restores: dict[str, Restoring] = {}   # the last restore of each collection since the server started
        self._lock = threading.Lock()
        self._tasks: set[asyncio.Task] = set()

    # ------------------------------------------------------------------ runs
    def start(self, library: Library, recipe: str, settings: dict) -> Job:
        """Start ``hashseek train <collection> --recipe <recipe> --out <run folder>`` with the settings
        given; refused while another run of the collection is under way or being applied."""
        RECIPES.get(recipe)   # an UnknownNameError naming the recipes
        self._refuse_read_only(library)
        with self._lock:
            self._refuse_while_switching(library.name)
            job_id = f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{recipe}-{secrets.token_hex(2)}"
            folder = library.path / TRAINING_DIR / job_id
            record = {"recipe": recipe, "settings": settings, "epochs": planned_epochs(recipe, settings),
                      "state": "running", "started_at": _now(), "finished_at": None, "error": None}
            try:
                folder.mkdir(parents=True)
                atomic_write_json(folder / JOB_FILE, record)
            except OSError as err:
                raise os_error(err, folder, "starting a training run") or err
            job = Job(job_id, folder, record)
            try:
                job.process = subprocess.Popen(self._command(library, recipe, settings, folder),
                                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                               stdin=subprocess.DEVNULL, env=_environment())
            except OSError as err:   # no process to follow: the run is recorded as failed
                job.output.feed(f"cannot start the training: {err}\n")
                job.finish(-1)
                raise
            self._jobs[library.name, job_id] = job
        threading.Thread(target=self._follow, args=(job,), name=f"training-{job_id}", daemon=True).start()
        return job

    @staticmethod
    def _command(library: Library, recipe: str, settings: dict, folder: Path) -> list[str]:
        flags = [item for key, value in settings.items() for item in (FLAGS[key], str(value))]
        return [sys.executable, "-c", CLI, "train", str(library.path), "--recipe", recipe, *flags, "--out", str(folder)]

    @staticmethod
    def _follow(job: Job) -> None:
        """Read the run's output until it ends (a thread per run)."""
        stream, decoder = job.process.stdout, codecs.getincrementaldecoder("utf-8")(errors="replace")
        while chunk := stream.read1(4096):
            job.output.feed(decoder.decode(chunk))
        job.finish(job.process.wait())

    def get(self, library: Library, job_id: str) -> Job:
        """A run of this server, or one found in the collection's training folder."""
        with self._lock:
            job = self._jobs.get((library.name, job_id))
        if job is not None:
            return job
        folder = library.path / TRAINING_DIR / job_id
        record = read_job(folder)
        if record is None:
            raise NotFoundError(f"collection {library.name!r} has no training run {job_id!r}")
        if record["state"] == "running":   # this server did not start it: a run cut short by a restart
            record["state"] = "interrupted"
        return Job(job_id, folder, record)

    def list(self, library: Library, limit: int = 20) -> list[Job]:
        """The collection's runs, newest first."""
        folder = library.path / TRAINING_DIR
        names = sorted((p.name for p in folder.iterdir() if re.fullmatch(JOB_ID, p.name)), reverse=True) \
            if folder.is_dir() else []
        jobs = []
        for name in names[:limit]:
            try:
                jobs.append(self.get(library, name))
            except NotFoundError:   # a folder without its job.json: not a run of the page's
                continue
        return jobs

    def cancel(self, library: Library, job_id: str) -> Job:
        job = self.get(library, job_id)
        if job.state != "running" or job.process is None:
            raise ConflictError(f"training run {job_id} is {job.state}, not running")
        job.cancelled = True
        job.process.terminate()   # every epoch is checkpointed atomically: nothing half-written is kept
        return job

    def _busy(self, name: str) -> Job | None:
        for (collection, _), job in self._jobs.items():
            if collection == name and (job.state == "running" or (job.applying and job.applying.under_way)):
                return job
        return None

    @staticmethod
    def _refuse_read_only(library: Library) -> None:
        if library.collection.read_only:
            raise ReadOnlyError(f"collection {library.name!r} is served read-only: its model cannot change")

    def _refuse_while_switching(self, name: str) -> None:
        """One model change at a time (under the lock): a run training or being applied, or a restore."""
        busy = self._busy(name)
        if busy is not None:
            raise ConflictError(f"training run {busy.id} of {name!r} is "
                                f"{busy.state if busy.state == 'running' else 'being applied'}: wait for it, or "
                                "cancel a running one")
        restoring = self._restores.get(name)
        if restoring is not None and restoring.under_way:
            raise ConflictError(f"collection {name!r} is switching back to its previous model: wait for it to finish")

    # ------------------------------------------------------------------ models
    async def apply(self, library: Library, job_id: str) -> Job:
        """Switch the collection to the run's model: staged before this returns (changes are refused from
        then on), re-encoded in the background beside the searches, then swapped in; the job's ``apply``
        follows it."""
        job = self.get(library, job_id)
        if job.state != "done":
            raise ConflictError(f"training run {job_id} is {job.state}: only a finished run's model can be applied")
        self._refuse_read_only(library)
        with self._lock:
            self._refuse_while_switching(library.name)
            job.applying = Applying(total=len(library.collection))
            self._jobs[library.name, job_id] = job
        await model_switch.begin(library, job.applying, job.folder)
        self._finish(library, job.applying, f"applying training run {job.folder}")
        return job

    async def restore(self, library: Library) -> Restoring:
        """Switch the collection back to the model the last switch replaced, as ``apply`` does: staged before
        this returns, the images added since encoded in the background, then the swap."""
        self._refuse_read_only(library)
        with self._lock:
            self._refuse_while_switching(library.name)
            last, restoring = self._restores.get(library.name), Restoring()
            self._restores[library.name] = restoring
        try:
            await model_switch.begin_restore(library, restoring)
        except BaseException:   # nothing was staged (no previous model, say): the answer says why
            with self._lock:
                self._restores.pop(library.name)
                if last is not None:
                    self._restores[library.name] = last
            raise
        self._finish(library, restoring, f"restoring the previous model of {library.path}")
        return restoring

    def restoring(self, library: Library) -> Restoring | None:
        """The collection's last restore since the server started."""
        with self._lock:
            return self._restores.get(library.name)

    def _finish(self, library: Library, switch: Applying, what: str) -> None:
        task = asyncio.get_running_loop().create_task(model_switch.finish(library, switch, what))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def delete(self, library: Library, job_id: str) -> None:
        """Delete a finished run's folder; refused for a run under way or being applied, and for the run
        whose model the collection uses or would restore (checked on the collection's thread, where a
        switch cannot pass meanwhile)."""
        job = self.get(library, job_id)
        trash = await library.run(self._set_aside, library, job)
        await asyncio.to_thread(shutil.rmtree, trash, ignore_errors=True)

    def _set_aside(self, library: Library, job: Job) -> Path:
        """Rename the run's folder out of the listing (a crash cannot leave half a run listed); its new path."""
        trained_at = run_progress(job.folder)["trained_at"]
        collection = library.collection
        for model, which in ((collection.image_hasher.describe(), "uses"),
                             (collection.previous_hasher, "would bring back with a restore")):
            if trained_at is not None and (model or {}).get("trained_at") == trained_at:
                raise ConflictError(f"collection {library.name!r} {which} the model of training run {job.id}: "
                                    "it is not deleted")
        with self._lock:
            job = self._jobs.get((library.name, job.id), job)
            if job.state == "running" or (job.applying is not None and job.applying.under_way):
                doing = "running" if job.state == "running" else "being applied"
                raise ConflictError(f"training run {job.id} is {doing}: wait for it or cancel it first")
            trash = job.folder.with_name(f".deleting-{job.id}")
            shutil.rmtree(trash, ignore_errors=True)   # one a crash left
            try:
                job.folder.rename(trash)
            except OSError as err:
                raise os_error(err, job.folder, "deleting a training run") or err
            self._jobs.pop((library.name, job.id), None)
        return trash

    def close(self) -> None:
        """Server shutdown: running trainings stop (their folders keep the checkpoints), and so do
        switches under way (their staged slots are continued by the next apply or restore)."""
        with self._lock:
            running = [job for job in self._jobs.values() if job.process is not None and job.state == "running"]
            switches = [job.applying for job in self._jobs.values() if job.applying is not None]
            applying = [switch for switch in switches + list(self._restores.values()) if switch.under_way]
        for switch in applying:
            switch.stop()
        for job in running:
            job.cancelled = True
            job.process.terminate()
        for job in running:
            try:
                job.process.wait(10)
            except subprocess.TimeoutExpired:
                job.process.kill()


def _environment() -> dict[str, str]:
    """The server's environment, with this hashseek first on the path (however it was installed) and the
    output unbuffered, so progress arrives as it is made."""
    package_root = str(Path(hashseek.__file__).resolve().parents[1])
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": package_root + (os.pathsep + path if path else ""), "PYTHONUNBUFFERED": "1"}
