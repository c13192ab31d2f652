"""Every error answer is JSON (issue #15 F, #17 item 3): typed errors with their status, a bare bug as a 500,
413 and multipart errors, strict integer ids; against real uvicorn servers on 127.0.0.1."""
from __future__ import annotations

import http.client
from urllib.parse import urlsplit

import httpx
import pytest

from hashseek.service import create_app
from hashseek.service.config import SERVICE_DEFAULTS
from hashseek.service.errors import TYPED_ERRORS

C = "/api/collections/caltech"


def _json_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"] == "application/json", response.text
    detail = response.json()["detail"]
    assert detail, response.text
    return detail if isinstance(detail, str) else str(detail)


@pytest.fixture(scope="module")
def bug_server(serve_app, collection_copy):
    """A real app and server with test routes that raise each typed error, and one with a bare KeyError."""
    app = create_app(collection_copy())
    for error_type in TYPED_ERRORS:
        def raise_it(error_type=error_type):
            raise error_type(f"a {error_type.__name__} for the user")
        app.get(f"/test/{error_type.__name__}")(raise_it)

    @app.get("/test/bug")
    def bug():
        return {}["missing"]   # a programming mistake, not "not found"

    with serve_app(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield client


@pytest.mark.parametrize("error_type", TYPED_ERRORS, ids=lambda t: t.__name__)
def test_typed_errors_answer_their_status_in_json(bug_server, error_type):
    detail = _json_error(bug_server.get(f"/test/{error_type.__name__}"), error_type.status)
    assert detail == f"a {error_type.__name__} for the user"


def test_a_bare_key_error_is_a_500_not_a_404(bug_server):
    detail = _json_error(bug_server.get("/test/bug"), 500)
    assert "internal server error" in detail and "missing" not in detail     # no internals leak
    assert bug_server.get("/health").status_code == 200
    url = urlsplit(str(bug_server.base_url))
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    try:   # the bug's answer leaves the connection open: the next request on it is answered too
        for path, status in (("/test/bug", 500), ("/health", 200), ("/test/bug", 500)):
            connection.request("GET", path)
            response = connection.getresponse()
            assert response.status == status and response.getheader("connection") != "close"
            response.read()
    finally:
        connection.close()


def test_413_is_json_with_and_without_content_length(client):
    limit = SERVICE_DEFAULTS.max_upload_bytes
    detail = _json_error(client.post(f"{C}/search", files={"file": ("big.jpg", b"\xff" * (limit + 1))}), 413)
    assert f"{limit:,} bytes" in detail

    def streamed():   # chunked, no Content-Length: refused once the counted bytes pass the limit
        yield b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n'
        for _ in range(limit // 2**20 + 2):
            yield b"\xff" * 2**20
        yield b"\r\n--x--\r\n"
    chunked = client.post(f"{C}/search", content=streamed(), headers={"content-type": "multipart/form-data; boundary=x"})
    assert "limit" in _json_error(chunked, 413)
    assert client.get("/health").status_code == 200


def test_a_lower_upload_limit_is_a_setting(serve_app, collection_copy, photo):
    with serve_app(create_app(collection_copy(), max_upload_bytes=1000)) as url, httpx.Client(base_url=url) as client:
        assert "1,000 bytes" in _json_error(client.post(f"{C}/search", files={"file": ("p.jpg", photo[1])}), 413)


def test_a_5000_character_file_name_gets_a_clear_message(client, photo):
    name = "a" * 5000 + ".jpg"
    detail = _json_error(client.post(f"{C}/search", files={"file": (name, photo[1], "image/jpeg")}), 400)
    assert "header size" in detail and "file name" in detail, detail
    broken = client.post(f"{C}/search", content=b"--x\r\nnot a part", headers={"content-type": "multipart/form-data; boundary=x"})
    assert broken.status_code in (400, 422) and broken.headers["content-type"] == "application/json"


@pytest.mark.parametrize("spelling", ["+1", "01", "1_0", " 1", "1.0", "0x1", "１"])
def test_ids_are_plain_decimal_digits(client, spelling):
    for path in (f"{C}/images/{spelling}", f"{C}/images/{spelling}/similar", f"{C}/images/{spelling}/thumbnail"):
        detail = _json_error(client.get(path), 422)
        assert "plain decimal digits" in detail, detail
    assert "plain decimal digits" in _json_error(client.get(f"{C}/search/random", params={"seed": spelling}), 422)
    assert "plain decimal digits" in _json_error(client.get(f"{C}/images/1/similar", params={"k": spelling}), 422)
    assert client.get(f"{C}/images/1").status_code == 200 and client.get(f"{C}/images/10").status_code == 200


def test_http_errors_of_the_framework_are_json(server, client):
    assert _json_error(client.get("/no/such/route"), 404)
    assert _json_error(client.put(f"{C}/images/1"), 405)
    assert _json_error(client.get(f"{C}/images/99999"), 404)
    assert "evil.example" in _json_error(client.get(f"{C}/images/1", headers={"Host": "evil.example"}), 400)
    connection = http.client.HTTPConnection(urlsplit(server).netloc, timeout=30)   # sent byte for byte
    connection.request("GET", "/static/../../../etc/passwd")
    response = connection.getresponse()
    assert response.status == 404 and response.getheader("content-type") == "application/json"
    connection.close()
