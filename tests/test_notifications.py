"""Reading notifications: `organization.notifications` in keyset pages newest first, `read` for
each viewer, the `unread` filter, and `markNotificationRead` (the permission matrix is
test_billing_permissions.py)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from core import clock
from models.usage import Notification
from tests.support.accounts import access_token, organization_with_team
from tests.support.graphql import gid, graphql, run_mutation
from tests.support.servers import Clock

PAGE = """query($first: Int!, $after: String, $unread: Boolean) { organization(slug: "acme") {
    notifications(first: $first, after: $after, unread: $unread) {
        edges { node { title read } } pageInfo { hasNextPage endCursor } } } }"""


async def page(http: httpx.AsyncClient, token: str, first: int = 10, after: str | None = None,
               unread: bool | None = None) -> tuple[list[tuple[str, bool]], dict[str, Any]]:
    body = await graphql(http, PAGE, {"first": first, "after": after, "unread": unread},
                         token=token)
    assert "errors" not in body, body
    found = body["data"]["organization"]["notifications"]
    return ([(e["node"]["title"], e["node"]["read"]) for e in found["edges"]],
            found["pageInfo"])


async def mark(http: httpx.AsyncClient, token: str, notification: Notification
               ) -> dict[str, Any]:
    return await run_mutation(http, "markNotificationRead", "MarkNotificationReadInput", {
        "notificationId": gid("Notification", notification.id)}, "notification { title read }",
        token=token)


async def test_pages_newest_first_read_for_each_viewer(
    http: httpx.AsyncClient, frozen_clock: Clock
) -> None:
    acme = await organization_with_team("Acme", "acme", roles=("OWNER", "ADMINISTRATOR"))
    made = []
    for n in range(5):
        made.append(await Notification.create(
            organization_id=acme.organization.id, kind="USAGE_WARNING", key=f"k{n}",
            title=f"N{n}", body="", created_at=clock.now()))
        if n != 2:  # N2 and N3 at the same moment: the newer ID first
            frozen_clock.advance(minutes=1)
    owner = await access_token("owner@example.com")
    administrator = await access_token("administrator@example.com")

    assert await mark(http, owner, made[3]) == {
        "notification": {"title": "N3", "read": True}, "userErrors": []}
    assert await mark(http, owner, made[3]) == {  # again: still read, nothing else
        "notification": {"title": "N3", "read": True}, "userErrors": []}
    await mark(http, owner, made[0])

    first, info = await page(http, owner, first=2)
    assert (first, info["hasNextPage"]) == ([("N4", False), ("N3", True)], True)
    made.append(await Notification.create(  # a newer one does not shift the next page
        organization_id=acme.organization.id, kind="USAGE_WARNING", key="k5", title="N5",
        body="", created_at=clock.now() + timedelta(minutes=1)))
    second, info = await page(http, owner, first=2, after=info["endCursor"])
    assert (second, info["hasNextPage"]) == ([("N2", False), ("N1", False)], True)
    third, info = await page(http, owner, first=2, after=info["endCursor"])
    assert (third, info["hasNextPage"]) == ([("N0", True)], False)

    assert (await page(http, owner, unread=True))[0] == [
        ("N5", False), ("N4", False), ("N2", False), ("N1", False)]
    assert (await page(http, owner, unread=False))[0] == [("N3", True), ("N0", True)]
    # Read is each viewer's own.
    assert (await page(http, administrator))[0] == [
        ("N5", False), ("N4", False), ("N3", False), ("N2", False), ("N1", False),
        ("N0", False)]


async def test_another_organizations_notification_is_not_found(http: httpx.AsyncClient) -> None:
    acme = await organization_with_team("Acme", "acme", roles=("OWNER",))
    await organization_with_team("Globex", "globex", domain="globex.example", roles=("OWNER",))
    notification = await Notification.create(
        organization_id=acme.organization.id, kind="USAGE_WARNING", key="k", title="Acme",
        body="", created_at=clock.now())
    outsider = await access_token("owner@globex.example")
    assert await mark(http, outsider, notification) == {"notification": None, "userErrors": [{
        "field": "notificationId", "code": "NOT_FOUND",
        "message": "No such notification: only the owner and administrators see them."}]}
    missing = await run_mutation(
        http, "markNotificationRead", "MarkNotificationReadInput",
        {"notificationId": gid("Notification", notification.id + 1000)}, "notification { id }",
        token=outsider)
    assert missing["userErrors"][0]["code"] == "NOT_FOUND"
    wrong = await run_mutation(
        http, "markNotificationRead", "MarkNotificationReadInput",
        {"notificationId": gid("Product", notification.id)}, "notification { id }",
        token=outsider)
    assert wrong["userErrors"] == [{"field": "notificationId", "code": "INVALID_ID",
                                    "message": "This is not the ID of a Notification."}]
