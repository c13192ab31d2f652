"""Who may write: the API key, loopback, and the origin of a browser's request."""
from __future__ import annotations

import ipaddress
import secrets
from urllib.parse import urlsplit

from fastapi import HTTPException

from hashseek.core.errors import InvalidInputError


class WriteGuard:
    """Who may add and remove: anyone on loopback without a key; with a key, only its holders;
    on any other address without a key, nobody (an open write API on a network is a mistake).
    A browser's write from another site's page (its Origin is not this server) is refused too.

    The key is compared in constant time (``secrets.compare_digest``), so the time an answer takes
    says nothing about how much of a guessed key was right."""

    def __init__(self, api_key: str | None, host: str):
        if api_key is not None and not api_key.strip():  # an unset variable expanded to "": no key at all
            raise InvalidInputError("the API key is empty: give a non-empty --api-key, --api-key-file or "
                                    "HASHSEEK_API_KEY, or none at all")
        self.api_key = api_key
        self.loopback = is_loopback(host)

    @property
    def writable(self) -> bool:
        return self.api_key is not None or self.loopback

    def check(self, given_key: str | None, origin: str | None, host: str | None) -> None:
        if origin is not None and urlsplit(origin).netloc != host:
            raise HTTPException(403, f"writes from pages of another site ({origin}) are refused")
        if self.api_key is None:
            if not self.loopback:
                raise HTTPException(403, "writes are disabled on a non-loopback address without an API key "
                                         "(start the server with --api-key, --api-key-file or HASHSEEK_API_KEY)")
            return
        if given_key is None or not secrets.compare_digest(given_key.encode(), self.api_key.encode()):
            raise HTTPException(401, "a valid X-API-Key header is required for this request",
                                headers={"WWW-Authenticate": "X-API-Key"})


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
