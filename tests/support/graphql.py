"""GraphQL over HTTP as the tests call it: a request, a mutation's payload, global IDs, the
audit log."""

from __future__ import annotations

from typing import Any

import httpx
from strawberry import relay


async def graphql(
    http: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    token: str | None = None,
    expect_status: int = 200,
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await http.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
    )
    assert response.status_code == expect_status, response.text
    return response.json()


def malformed(response: httpx.Response) -> tuple[int, str]:
    """The status and message of a request `/graphql` could not read, whose JSON body must
    carry the code `MALFORMED_REQUEST`."""
    [error] = response.json()["errors"]
    assert error["extensions"] == {"code": "MALFORMED_REQUEST"}, error
    return response.status_code, error["message"]


def gid(type_name: str, pk: int | str) -> str:
    """The global ID of a `type_name` with primary key `pk`."""
    return str(relay.GlobalID(type_name, str(pk)))


async def run_mutation(
    http: httpx.AsyncClient,
    name: str,
    input_type: str,
    input: dict[str, Any],
    selection: str,
    *,
    token: str | None,
) -> dict[str, Any]:
    """Call mutation `name` with `input`; returns its payload (`selection` plus userErrors)."""
    body = await graphql(
        http,
        f"mutation($input: {input_type}!) {{ {name}(input: $input) "
        f"{{ {selection} userErrors {{ field message code }} }} }}",
        {"input": input},
        token=token,
    )
    assert "errors" not in body, body
    return body["data"][name]


AUDIT_FIELDS = "action actorEmail targetType targetId targetLabel details ipAddress createdAt"


async def audit_trail(
    http: httpx.AsyncClient, slug: str, *, token: str, first: int = 50
) -> list[dict[str, Any]]:
    """The organization's audit log, newest first, as the holder of `token` sees it."""
    body = await graphql(
        http,
        "query($slug: String!, $first: Int!) { organization(slug: $slug) { "
        f"auditLog(first: $first) {{ edges {{ node {{ {AUDIT_FIELDS} }} }} }} }} }}",
        {"slug": slug, "first": first},
        token=token,
    )
    assert "errors" not in body, body
    return [edge["node"] for edge in body["data"]["organization"]["auditLog"]["edges"]]
