"""Operations: health, readiness, request IDs and logs, the body size limit."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from core.settings import get_settings
from tests.support.graphql import graphql


async def test_health_and_readiness(http):
    health = await http.get("/healthz")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    ready = await http.get("/readyz")
    assert (ready.status_code, ready.json()) == (200, {"status": "ok", "database": "ok"})


async def test_request_id_is_echoed_or_generated_and_logged(http, caplog):
    with caplog.at_level(logging.INFO, logger="devicecloud.request"):
        echoed = await http.get("/healthz", headers={"X-Request-ID": "trace-123"})
        generated = await http.get("/healthz", headers={"X-Request-ID": "not ok; <script>"})
    assert echoed.headers["x-request-id"] == "trace-123"
    assert len(generated.headers["x-request-id"]) == 32
    records = [r for r in caplog.records if r.name == "devicecloud.request"]
    assert [(r.method, r.path, r.status) for r in records[-2:]] == [
        ("GET", "/healthz", 200),
        ("GET", "/healthz", 200),
    ]


async def test_log_lines_are_json_with_the_request_id():
    from api.logs import JsonFormatter
    from core.context import request_id

    token = request_id.set("rid-7")
    try:
        record = logging.LogRecord(
            "devicecloud.request", logging.INFO, __file__, 1, "request", (), None
        )
        record.status = 201
        line = json.loads(JsonFormatter().format(record))
    finally:
        request_id.reset(token)
    assert {k: line[k] for k in ("level", "logger", "message", "request_id", "status")} == {
        "level": "info",
        "logger": "devicecloud.request",
        "message": "request",
        "request_id": "rid-7",
        "status": 201,
    }


async def test_bodies_over_one_megabyte_get_413(http):
    big = "x" * (1024 * 1024 + 1)
    declared = await http.post("/graphql", json={"query": big})
    assert declared.status_code == 413
    assert declared.json() == {
        "error": "request_too_large",
        "error_description": "The request body is larger than 1048576 bytes.",
    }

    async def chunks():
        for _ in range(17):
            yield b"x" * 65536

    streamed = await http.post(
        "/graphql", content=chunks(), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413
    body = await graphql(http, "{ me { id } }")
    assert body["data"] == {"me": None}


async def test_uploads_may_be_larger_than_one_megabyte_up_to_their_own_limit(http):
    files = {"file": ("ids.txt", b"a" * (2 * 1024 * 1024), "text/plain")}
    response = await http.post("/graphql", files=files)
    assert response.status_code != 413


async def test_oversized_upload_is_refused_from_its_declared_length(live_server):
    host, port = live_server.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"POST /graphql HTTP/1.1\r\nHost: test\r\n"
        b"Content-Type: multipart/form-data; boundary=b\r\n"
        + f"Content-Length: {6 * 1024 * 1024 + 1}\r\n\r\n".encode()
    )
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    assert status_line == b"HTTP/1.1 413 Request Entity Too Large\r\n"


def test_serve_refuses_several_workers_without_a_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    from api import cli

    monkeypatch.setattr(get_settings(), "broker_url", "")
    with pytest.raises(SystemExit) as stopped:
        cli.main(["serve", "--workers", "2"])
    assert str(stopped.value) == (
        "--workers above 1 needs BROKER_URL=redis://…: with the in-process broker, live events "
        "and function calls would not cross between the worker processes."
    )
