"""The server itself: the page, whether it is alive, and whether a request may write."""
from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from hashseek.service.dependencies import WriteAllowed
from hashseek.service.schemas import WRITE, Health

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
router = APIRouter(tags=["service"])


@router.get("/", include_in_schema=False)
async def page() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html")


@router.get("/health", response_model=Health)
async def health(request: Request) -> Health:
    """Alive, and how many images each collection holds (read without queueing behind a running add)."""
    libraries = request.app.state.libraries
    return Health(status="ok", collections={name: len(lib.collection) for name, lib in libraries.items()})


@router.post("/api/write-access", status_code=204, responses=WRITE, dependencies=[WriteAllowed])
async def write_access() -> None:
    """204 when this request may write (the page checks an API key typed into it); 401 or 403 otherwise."""
