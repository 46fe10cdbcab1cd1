"""Every 404 and 405 of the API is JSON in the shape of its other HTTP errors, with `Allow` on
a 405 and the request ID; the hosted pages keep their security headers on them."""

from __future__ import annotations

import httpx
import pytest


def assert_answer(response: httpx.Response, status: int, message: str, code: str) -> None:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    assert len(response.headers["x-request-id"]) >= 16
    if response.request.method != "HEAD":
        assert response.json() == {"errors": [{"message": message, "extensions": {"code": code}}]}


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/nothing-here"),
    ("POST", "/v1/nothing"),
    ("GET", "/device/v1"),  # a WebSocket endpoint, asked over HTTP
    ("GET", "/v1/products"),
    ("DELETE", "/graphql/extra"),
])
async def test_an_unknown_path_gets_a_json_404(http, method, path):
    response = await http.request(method, path)
    assert_answer(response, 404, f"There is nothing at {path}.", "PATH_NOT_FOUND")


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("GET", "/oauth/token", "POST"),
    ("PUT", "/oauth/revoke", "POST"),
    ("POST", "/healthz", "GET, HEAD"),
    ("DELETE", "/v1/products/thermostat/events", "GET, HEAD"),
    ("PATCH", "/graphql", "GET, POST"),
    ("HEAD", "/graphql", "GET, POST"),
])
async def test_a_method_an_endpoint_does_not_take_gets_a_json_405(http, method, path, allow):
    response = await http.request(method, path)
    assert_answer(response, 405, f"{method} is not allowed on {path}; it takes {allow}.",
                  "METHOD_NOT_ALLOWED")
    assert response.headers["allow"] == allow


async def test_the_hosted_pages_keep_their_security_headers_on_a_405(http):
    page = await http.get("/oauth/authorize")
    response = await http.request("PUT", "/oauth/authorize")
    assert_answer(response, 405, "PUT is not allowed on /oauth/authorize; it takes GET, HEAD, "
                                 "POST.", "METHOD_NOT_ALLOWED")
    for header in ("x-frame-options", "referrer-policy", "x-content-type-options"):
        assert response.headers[header] == page.headers[header]
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
