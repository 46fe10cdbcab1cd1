"""Who reaches billing's notifications and blocks: `organization.notifications`, `node` of a
notification, `markNotificationRead` and `addBlock` against every kind of caller, in one table.
The owner and administrators see and mark notifications; everyone else gets NOT_FOUND (the rest
of the team too, as if there were nothing to see) or null for an organization they cannot see
at all. `addBlock` is a mutation like the others: NOT_FOUND to those outside, FORBIDDEN to the
other roles and to a third-party app."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from billing import accounts
from billing.plans import PlanKind, Subscription
from core import clock
from models.customers import Customer
from models.usage import BillingAccount, Notification, NotificationRead
from tests.support.accounts import TEAM_ROLES, Team
from tests.support.customers import app_token, make_customer
from tests.support.graphql import gid
from tests.support.matrix import FB, NF, OK, Matrix, Probe, caller_token, ok_if
from tests.support.worlds import two_organizations

CALLERS = ("anonymous", "client", "customer", "app", "outsider", *TEAM_ROLES)
_ = None

# The world: Acme (one member per role) on BASIC, one block, with one notification; its
# product "thermostat" and that product's customer ada@. Callers: anonymous; client (a
# platform service client's token); customer (ada@'s token); app (a third-party app's token for
# Acme's owner, with every scope); outsider (Globex's owner); the Acme member with each role.
# fmt: off
MATRIX = Matrix(CALLERS, {
    #                            anon clnt cust app  out  OWN  ADM  DEV  SUP  VIEW
    "organization.notifications": (_,  _,   _,   _,   _,   OK,  OK,  NF,  NF,  NF),
    "node(notification)":         (_,  _,   _,   _,   _,   OK,  OK,  _,   _,   _),
    "markNotificationRead":       (NF, NF,  NF,  NF,  NF,  OK,  OK,  NF,  NF,  NF),
    "addBlock":                   (NF, NF,  NF,  FB,  NF,  OK,  OK,  FB,  FB,  FB),
})
# fmt: on


@dataclass
class World:
    acme: Team
    notification: Notification
    ada: Customer


@pytest.fixture
async def world() -> World:
    base = await two_organizations()
    organization = base.acme.organization.id
    await accounts.set_plan(organization, Subscription(PlanKind.BASIC))
    notification = await Notification.create(
        organization_id=organization, kind="USAGE_WARNING", key="k", title="Acme: 70 %",
        body="Seventy.", created_at=clock.now())
    ada = await make_customer(base.thermostat, "ada@example.com")
    return World(base.acme, notification, ada)


@MATRIX.operation("organization.notifications")
async def _notifications(p: Probe[World]) -> Any:
    found = await p.read('{ organization(slug: "acme") { notifications { edges { node { '
                         "title read } } } } }", {}, "organization", "notifications")
    return ok_if(found, {"edges": [{"node": {"title": "Acme: 70 %", "read": False}}]})


@MATRIX.operation("node(notification)")
async def _node(p: Probe[World]) -> Any:
    return await p.node(gid("Notification", p.world.notification.id))


@MATRIX.operation("markNotificationRead")
async def _mark_read(p: Probe[World]) -> Any:
    before = await NotificationRead.all().count()
    payload, code = await p.mutate("markNotificationRead", "MarkNotificationReadInput", {
        "notificationId": gid("Notification", p.world.notification.id)},
        "notification { title read }")
    written = await NotificationRead.all().count() - before
    if code is not None:
        return code if written == 0 and payload["notification"] is None else payload
    return ok_if((payload["notification"], written), ({"title": "Acme: 70 %", "read": True}, 1))


@MATRIX.operation("addBlock")
async def _add_block(p: Probe[World]) -> Any:
    organization = p.world.acme.organization.id

    async def added() -> bool:
        return (await BillingAccount.get(organization_id=organization)).blocks == 2

    return await p.audited("addBlock", "AddBlockInput", {
        "organizationId": gid("Organization", organization)}, "planChange { blocks }",
        effect=added)


def test_the_table_covers_every_operation_and_caller() -> None:
    MATRIX.assert_complete()


@pytest.mark.parametrize("caller", CALLERS)
async def test_permission_matrix(http, world: World, caller: str) -> None:
    if caller == "app":
        token = await app_token(world.acme.users["OWNER"], "devices:read events:read "
                                                           "devices:call")
    else:
        token = await caller_token(http, caller, world.acme, customers={"customer": world.ada})
    await MATRIX.check(caller, Probe(http, token, world, caller))
