"""Typed errors: what went wrong for the user, as opposed to a bug.

The CLI prints a ``HashseekError`` and exits with its ``exit_code``; the service answers it
with its ``status`` and a JSON body. Anything else (a bare ``KeyError`` from a programming
mistake) stays a crash with a traceback, so a bug never looks like "not found".

Each class also derives from the built-in error it refines (``KeyError``, ``ValueError``,
``OSError``), so callers that caught those keep working.
"""
from __future__ import annotations


class HashseekError(Exception):
    """Base of every error meant for the user."""

    status = 400          # HTTP status in the service
    exit_code = 2         # the CLI's exit status

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else self.__class__.__name__


class InvalidInputError(HashseekError, ValueError):
    """Arguments, flags, files or requests that cannot be used as given."""


class NotFoundError(HashseekError, KeyError):
    """No such image, collection, model, dataset or registered name."""

    status = 404


class UnknownNameError(NotFoundError, ValueError):
    """A name that no registry holds (a backbone, loss, hasher, index kind, protocol)."""

    status = 400


class ConflictError(HashseekError, ValueError):
    """The request contradicts the current state: a collection open elsewhere, one that exists already,
    one that has no codes yet."""

    status = 409


class ReadOnlyError(HashseekError, PermissionError):
    """A write asked of a collection opened read-only (or on a read-only file system)."""

    status = 403


class StorageFullError(HashseekError, OSError):
    """The disk is full (ENOSPC) or refused a write (EIO); nothing of the write was kept."""

    status = 507
    exit_code = 3


class DamagedError(HashseekError, ValueError):
    """A file of a collection or model is damaged; the message names it and the repair command."""

    status = 500
    exit_code = 3


class UnavailableError(HashseekError, ConnectionError):
    """A remote part (a Milvus server) does not answer; retrying later may work."""

    status = 503
    exit_code = 3
