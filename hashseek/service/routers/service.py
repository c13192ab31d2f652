"""The server itself: the page, and whether it is alive."""
from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from hashseek.service.schemas import Health

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
