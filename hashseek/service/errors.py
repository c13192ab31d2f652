"""Every error answer is JSON ``{"detail": ...}``: typed errors with their own status, HTTP errors,
unreadable multipart bodies with their real cause, and bugs as a plain 500."""
from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from python_multipart.exceptions import FormParserError
from starlette.exceptions import HTTPException

from hashseek.core.errors import (ConflictError, DamagedError, HashseekError, InvalidInputError, NotFoundError,
                                  ReadOnlyError, StorageFullError, UnavailableError, UnknownNameError)

# Each with its handler; the base catches a typed error added to core/errors.py later.
TYPED_ERRORS = (InvalidInputError, NotFoundError, UnknownNameError, ConflictError, ReadOnlyError,
                StorageFullError, DamagedError, UnavailableError, HashseekError)
MULTIPART_HEADER_LIMIT = 4096 + 128   # python-multipart's longest header line, in bytes


def add_error_handlers(app: FastAPI) -> None:
    for error_type in TYPED_ERRORS:
        app.add_exception_handler(error_type, typed_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, server_error)


async def typed_error(request: Request, err: HashseekError) -> JSONResponse:
    """A user's error (its subclasses included): the status the class carries, its message."""
    return JSONResponse({"detail": str(err)}, err.status)


async def http_error(request: Request, err: HTTPException) -> JSONResponse:
    detail = err.detail
    if err.status_code == 400 and (cause := _multipart_cause(err)) is not None:
        detail = f"the multipart upload cannot be read: {cause}"
        if "header size" in cause:
            detail += (f" (a part's header, its file name included, may be at most {MULTIPART_HEADER_LIMIT} "
                       "bytes: shorten the file name)")
    return JSONResponse({"detail": detail}, err.status_code, headers=err.headers)


async def server_error(request: Request, err: Exception) -> JSONResponse:
    """A bug in a middleware outside ``BugsAnswered`` (Starlette re-raises it after this answer, uvicorn logs
    the traceback and closes the connection)."""
    return bug_response()


def bug_response() -> JSONResponse:
    """A bug's answer: no details, which stay in the server's log."""
    return JSONResponse({"detail": "internal server error (the server's log has the details)"}, 500)


def _multipart_cause(err: BaseException) -> str | None:
    """What python-multipart said, behind Starlette's generic "Invalid multipart data."."""
    seen: BaseException | None = err
    for _ in range(4):
        seen = seen.__cause__ or seen.__context__
        if seen is None:
            return None
        if isinstance(seen, FormParserError):
            return str(seen).rstrip(".") or type(seen).__name__
    return None
