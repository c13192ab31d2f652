"""A ``hashseek serve`` process on 127.0.0.1 and what is done to it: one copy for the benchmarks and the
tests that need the server in a process of its own (memory, ``kill -9``, screenshots, latency)."""
from __future__ import annotations

import io
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import httpx
from PIL import Image

CLI = "import sys; from hashseek.cli import main; sys.exit(main())"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve_process(collections: Path | Sequence[Path], *options: str, start_seconds: float = 300,
                  log: Path | None = None) -> Iterator[tuple[subprocess.Popen, str]]:
    """``hashseek serve`` over ``collections`` (with ``options``), as a user starts it, on a free loopback
    port; yields the process and its base URL once ``/health`` answers, and stops it (if still alive) on
    exit. Its output goes to ``log`` (default: a temporary file), not a pipe, so a long run never blocks on
    a full pipe; a server that does not start raises with that output."""
    paths = [collections] if isinstance(collections, (str, Path)) else list(collections)
    port = free_port()
    with (open(log, "w+") if log else tempfile.TemporaryFile("w+")) as log:
        process = subprocess.Popen([sys.executable, "-c", CLI, "serve", *map(str, paths), "--port", str(port),
                                    *options], stdout=log, stderr=subprocess.STDOUT, text=True)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + start_seconds
            while True:
                try:
                    httpx.get(f"{url}/health", timeout=5).raise_for_status()
                    break
                except httpx.TransportError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        process.kill()
                        process.wait(60)
                        log.seek(0)
                        raise RuntimeError(f"the server did not start:\n{log.read()[-4000:]}") from None
                    time.sleep(0.2)
            yield process, url
        finally:
            if process.poll() is None:
                process.terminate()
            process.wait(60)


def upload_burst(url: str, collection: str, name: str, data: bytes, clients: int, k: int = 5) -> list[int]:
    """``clients`` searches by upload at once (one thread each, released together); their status codes."""
    statuses: list[int] = []
    gate = threading.Barrier(clients)

    def upload() -> None:
        with httpx.Client(base_url=url, timeout=300) as client:
            gate.wait()
            statuses.append(client.post(f"/api/collections/{collection}/search", params={"k": k},
                                        files={"file": (name, data)}).status_code)

    threads = [threading.Thread(target=upload) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def bomb_png(side: int = 7000) -> bytes:
    """``side`` x ``side`` 1-bit black pixels (7000: 49 Mpx, under the 50 Mpx limit) in about 6 KB."""
    out = io.BytesIO()
    Image.new("1", (side, side)).save(out, "PNG")
    return out.getvalue()


def rss_mb(pid: int) -> float:
    """The process's resident set (VmRSS) in MB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")
