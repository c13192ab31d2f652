"""``sync --watch``: sync again whenever the folder changes, once it has been quiet for a moment.

File events come from ``watchdog`` (inotify on Linux). Without it, when the system refuses more
inotify watches, or when asked (a network share, whose remote changes raise no local events), the
folder is polled instead: a sync every ``poll_s`` seconds, which costs a directory walk when
nothing changed. A change starts a sync only after ``debounce_s`` without further events, so a
copy of many files is synced in one go rather than file by file. Stop it with Ctrl-C (or a
``stop`` event): a sync it interrupts leaves each file synced or not, like any killed sync.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from hashseek.core.errors import HashseekError
from hashseek.search.collection import Collection
from hashseek.search.sync import SyncReport, checked_folder

log = logging.getLogger(__name__)
# events a sync's own reading raises (watchdog reports opens and read-only closes) start nothing
_CHANGES = {"created", "deleted", "modified", "moved", "closed"}


@dataclass(frozen=True)
class WatchConfig:
    debounce_s: float = 2.0   # quiet time after the last file event before a sync starts
    poll_s: float = 10.0      # seconds between syncs when the folder is polled


WATCH_DEFAULTS = WatchConfig()


class _Changes:
    """Notes when the last relevant file event came (called from watchdog's thread)."""

    def __init__(self, ignore: Path):
        self.ignore, self.last, self.pending = str(ignore), 0.0, threading.Event()

    def dispatch(self, event) -> None:
        paths = [str(p) for p in (event.src_path, getattr(event, "dest_path", "")) if p]
        if event.event_type in _CHANGES and not all(p == self.ignore or p.startswith(self.ignore + os.sep)
                                                    for p in paths):
            self.last = time.monotonic()
            self.pending.set()


def _observer(root: Path, changes: _Changes):
    """A started watchdog observer of ``root``, or None (with the reason logged) when events are unavailable."""
    try:
        from watchdog.observers import Observer
    except ImportError as err:
        log.warning("watchdog is not installed (%s): polling %s instead", err, root)
        return None
    observer = Observer()
    try:
        observer.schedule(changes, str(root), recursive=True)
        observer.start()
    except OSError as err:   # e.g. the inotify watch limit (fs.inotify.max_user_watches)
        log.warning("file events unavailable for %s (%s): polling it instead", root, err)
        return None
    return observer


def watch(collection: Collection, folder: str | Path, *, labels_from_folders: bool = False,
          allow_empty: bool = False, debounce_s: float | None = None, poll_s: float | None = None,
          polling: bool = False, on_sync: Callable[[SyncReport], None] | None = None,
          on_error: Callable[[HashseekError], None] | None = None, stop: threading.Event | None = None,
          progress: bool = False) -> None:
    """Sync ``folder`` into ``collection`` now, then again after each burst of changes until ``stop`` is set
    (or Ctrl-C). ``on_sync`` gets the first sync's report and those of later ones that changed something
    (or found other files unreadable);
    a later sync's typed error (the folder unmounted, an empty folder refused) goes to ``on_error`` and
    watching goes on, by polling. ``polling``: poll even when file events are available."""
    debounce_s = WATCH_DEFAULTS.debounce_s if debounce_s is None else debounce_s
    poll_s = WATCH_DEFAULTS.poll_s if poll_s is None else poll_s
    stop = stop or threading.Event()
    root = checked_folder(folder)
    changes = _Changes(collection.path.expanduser().resolve())

    def run() -> SyncReport:
        return collection.sync(root, labels_from_folders=labels_from_folders, allow_empty=allow_empty,
                               progress=progress)

    observer = None if polling else _observer(root, changes)   # before the first sync: no change is missed
    try:
        report = run()
        said, failing = report.unreadable, None
        if on_sync is not None:
            on_sync(report)
        while not stop.is_set():
            if observer is None:
                if stop.wait(poll_s):
                    break
            else:
                if not changes.pending.wait(0.25):
                    continue
                while (quiet := time.monotonic() - changes.last) < debounce_s:
                    if stop.wait(debounce_s - quiet):
                        return
                changes.pending.clear()   # events during the sync below start another one
            try:
                report = run()
            except HashseekError as err:
                if on_error is None:
                    raise
                if str(err) != failing:   # a poll that meets the same error says it once
                    on_error(err)
                failing = str(err)
                if observer is not None:   # a folder deleted or unmounted under its watch raises no more events
                    observer.stop()
                    observer.join()
                    observer = None
                    log.warning("%s: polling it every %g s from now on", root, poll_s)
                continue
            failing = None
            if on_sync is not None and (report.changed or report.unreadable != said):   # not the same complaint again
                on_sync(report)
            said = report.unreadable
    finally:
        if observer is not None:
            observer.stop()
            observer.join()
