"""Who may use each query field and mutation of organizations, teams and products.

The whole answer is the table of MATRIX below: one row per operation, one column per kind of caller.
Each test builds a fresh world, signs one caller in and runs every row for that caller, in the
table's order, collecting every cell that differs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from fleet import organizations, products, team
from models.accounts import User
from models.oauth import OAuthClient
from models.organizations import AuditEntry, Invitation, Organization
from models.products import Product
from tests.support.accounts import TEAM_ROLES, Team, acting_as, make_user, organization_with_team
from tests.support.graphql import gid
from tests.support.matrix import FB, NF, OK, Matrix, Probe, caller_token, ok_if

CALLERS = (
    "anonymous",
    "client",
    "server",
    "outsider",
    "newcomer",
    "invitee",
    "OWNER",
    "ADMINISTRATOR",
    "DEVELOPER",
    "SUPPORT",
    "VIEWER",
)
UA = "UNAUTHENTICATED"
AIO, OWP = "ALREADY_IN_ORGANIZATION", "OWNER_PROTECTED"
AC, GX = "acme", "globex"  # me.organization.slug
NO, A1, A2 = (), ("Acme",), ("Globex", "Acme")  # me.invitations: organization names
_ = None
SCC, PCN = "SERVER_CLIENT_CONFIDENTIAL", "PUBLIC_CLIENT_NO_SECRET"

# The world: Acme (slug "acme") has one member per role (OWNER ... VIEWER), a product
# "thermostat" with a WEB, a SERVER and a public MOBILE OAuth client, and two pending
# invitations: one to invitee@ (VIEWER) and, newer, one to newcomer@ (DEVELOPER). Globex is
# another organization, owned by outsider@, which has invited invitee@ too.
#
# Callers: anonymous (no token); client (a client-credentials token of a platform service
# client); server (a client-credentials token of Acme's own SERVER product client: it acts for
# its product, never as a member); outsider (owner of Globex); newcomer and invitee (signed in,
# in no organization, each with pending invitations); then the Acme member with each role.
#
# Query cells: None = null; OK = the world's object, as expected; a code = a GraphQL error; any
# other value = the value read. Mutation cells: OK, or the code of the userError (every OK
# writes exactly one audit entry, every refusal none). Non-members never see FORBIDDEN.
#
# Rows run top to bottom in one world. Each mutation's target is chosen so that no cell depends
# on an earlier one (roles are changed on VIEWER, SUPPORT is removed: neither may do either;
# ownership is handed back after a successful transfer), except in the invitee's column: from
# acceptInvitation on it is a member of Acme (a VIEWER), so it may leave and cannot create an
# organization.
# fmt: off
MATRIX = Matrix(CALLERS, {
    #                           anon clnt srvr out  new  inv  OWN  ADM  DEV  SUP  VIEW
    "organization(slug)":       (_,  _,   _,   _,   _,   _,   OK,  OK,  OK,  OK,  OK),
    "me.organization":          (_,  _,   _,   GX,  _,   _,   AC,  AC,  AC,  AC,  AC),
    "me.invitations":           (_,  _,   _,   NO,  A1,  A2,  NO,  NO,  NO,  NO,  NO),
    "node(Organization)":       (_,  _,   _,   _,   _,   _,   OK,  OK,  OK,  OK,  OK),
    "node(Member)":             (_,  _,   _,   _,   _,   _,   OK,  OK,  OK,  OK,  OK),
    "node(Invitation)":         (_,  _,   _,   _,   _,   OK,  OK,  OK,  _,   _,   _),
    "node(Product)":            (_,  _,   _,   _,   _,   _,   OK,  OK,  OK,  OK,  OK),
    "node(AuditEntry)":         (_,  _,   _,   _,   _,   _,   OK,  OK,  _,   _,   _),
    "organization.seats":       (_,  _,   _,   _,   _,   _,   5,   5,   5,   5,   5),
    "organization.viewerRole":  (_,  _,   _,   _,   _,   _,   "OWNER", "ADMINISTRATOR",
                                                              "DEVELOPER", "SUPPORT", "VIEWER"),
    "organization.members":     (_,  _,   _,   _,   _,   _,   OK,  OK,  OK,  OK,  OK),
    "organization.invitations": (_,  _,   _,   _,   _,   _,   OK,  OK,  FB,  FB,  FB),
    "organization.products":    (_,  _,   _,   _,   _,   _,   OK,  OK,  OK,  OK,  OK),
    "organization.auditLog":    (_,  _,   _,   _,   _,   _,   OK,  OK,  FB,  FB,  FB),
    "product(idOrSlug)":        (_,  _,   _,   _,   _,   _,   OK,  OK,  OK,  OK,  OK),
    "product.oauthClients":     (_,  _,   _,   _,   _,   _,   OK,  OK,  OK,  OK,  OK),
    "updateOrganization":       (NF, NF,  NF,  NF,  NF,  NF,  OK,  OK,  FB,  FB,  FB),
    "inviteTeamMember":         (NF, NF,  NF,  NF,  NF,  NF,  OK,  OK,  FB,  FB,  FB),
    "revokeInvitation":         (NF, NF,  NF,  NF,  NF,  NF,  OK,  OK,  FB,  FB,  FB),
    "changeTeamMemberRole":     (NF, NF,  NF,  NF,  NF,  NF,  OK,  OK,  FB,  FB,  FB),
    "removeTeamMember":         (NF, NF,  NF,  NF,  NF,  NF,  OK,  OK,  FB,  FB,  FB),
    "createProduct":            (NF, NF,  NF,  NF,  NF,  NF,  OK,  OK,  OK,  FB,  FB),
    "updateProduct":            (NF, NF,  NF,  NF,  NF,  NF,  OK,  OK,  FB,  FB,  FB),
    "createOAuthClient":        (NF, NF,  NF,  NF,  NF,  NF,  OK,  OK,  OK,  FB,  FB),
    "createOAuthClient(public)":
                                (NF, NF,  NF,  NF,  NF,  NF,  OK,  OK,  OK,  FB,  FB),
    "createOAuthClient(public SERVER)":
                                (NF, NF,  NF,  NF,  NF,  NF,  SCC, SCC, SCC, FB,  FB),
    "rotateOAuthClientSecret":  (NF, NF,  NF,  NF,  NF,  NF,  OK,  OK,  OK,  FB,  FB),
    "rotateOAuthClientSecret(public)":
                                (NF, NF,  NF,  NF,  NF,  NF,  PCN, PCN, PCN, FB,  FB),
    "deleteOAuthClient":        (NF, NF,  NF,  NF,  NF,  NF,  OK,  OK,  OK,  FB,  FB),
    "transferOwnership":        (NF, NF,  NF,  NF,  NF,  NF,  OK,  FB,  FB,  FB,  FB),
    "declineInvitation":        (UA, UA,  UA,  NF,  NF,  OK,  NF,  NF,  NF,  NF,  NF),
    "acceptInvitation":         (UA, UA,  UA,  NF,  NF,  OK,  NF,  NF,  NF,  NF,  NF),
    "createOrganization":       (UA, UA,  UA,  AIO, OK,  AIO, AIO, AIO, AIO, AIO, AIO),
    "leaveOrganization":        (NF, NF,  NF,  NF,  NF,  OK,  OWP, OK,  OK,  OK,  OK),
})
# fmt: on


@dataclass
class World:
    acme: Team
    product: Product
    client: OAuthClient  # WEB
    server: tuple[OAuthClient, str | None]  # SERVER, with its secret
    mobile: OAuthClient  # MOBILE, public
    globex: Organization
    outsider: User
    newcomer: User
    invitee: User
    to_invitee: Invitation  # from Acme, VIEWER
    to_newcomer: Invitation  # from Acme, DEVELOPER
    globex_to_invitee: Invitation

    @property
    def acme_id(self) -> str:
        return gid("Organization", self.acme.organization.id)

    def member_id(self, role: str) -> str:
        return gid("Member", self.acme.memberships[role].id)


@pytest.fixture
async def world() -> World:
    acme = await organization_with_team("Acme", "acme")
    owner = acme.principals["OWNER"]
    product = await products.create_product(
        owner, acme.organization.id, name="Thermostat", slug="thermostat", description="",
        platform="Photon", customer_auth="SIMPLE",
    )
    client, _secret = await products.create_oauth_client(
        owner, product.id, name="Web app", client_type="WEB",
        redirect_uris=["https://app.example.com/cb"],
    )
    server = await products.create_oauth_client(
        owner, product.id, name="Backend", client_type="SERVER", redirect_uris=[]
    )
    mobile, _none = await products.create_oauth_client(
        owner, product.id, name="Phone app", client_type="MOBILE",
        redirect_uris=["com.example.thermostat:/cb"], public=True,
    )
    outsider = await make_user("outsider@example.com")
    globex = await organizations.create_organization(await acting_as(outsider), "Globex", "globex")
    newcomer = await make_user("newcomer@example.com")
    invitee = await make_user("invitee@example.com")
    org_id = acme.organization.id
    to_invitee = await team.invite_team_member(owner, org_id, invitee.email, "VIEWER")
    to_newcomer = await team.invite_team_member(owner, org_id, newcomer.email, "DEVELOPER")
    globex_to_invitee = await team.invite_team_member(
        await acting_as(outsider), globex.id, invitee.email, "DEVELOPER"
    )
    return World(acme, product, client, server, mobile, globex, outsider, newcomer, invitee,
                 to_invitee, to_newcomer, globex_to_invitee)


async def _node(p: Probe[World], type_name: str, pk: int) -> Any:
    return await p.node(gid(type_name, pk))


async def _acme(p: Probe[World], selection: str, *path: str) -> Any:
    return await p.read(
        f"query($slug: String!) {{ organization(slug: $slug) {{ {selection} }} }}",
        {"slug": "acme"}, "organization", *path,
    )


# --- Queries -----------------------------------------------------------------------------------


@MATRIX.operation("organization(slug)")
async def _organization(p: Probe[World]) -> Any:
    found = await _acme(p, "id name slug")
    return ok_if(found, {"id": p.world.acme_id, "name": "Acme", "slug": "acme"})


@MATRIX.operation("me.organization")
async def _me_organization(p: Probe[World]) -> Any:
    return await p.read("{ me { organization { slug } } }", {}, "me", "organization", "slug")


@MATRIX.operation("me.invitations")
async def _me_invitations(p: Probe[World]) -> Any:
    found = await p.read("{ me { invitations { organizationName } } }", {}, "me", "invitations")
    return found if found is None else tuple(i["organizationName"] for i in found)


@MATRIX.operation("node(Organization)")
async def _node_organization(p: Probe[World]) -> Any:
    return await _node(p, "Organization", p.world.acme.organization.id)


@MATRIX.operation("node(Member)")
async def _node_member(p: Probe[World]) -> Any:
    return await _node(p, "Member", p.world.acme.memberships["OWNER"].id)


@MATRIX.operation("node(Invitation)")
async def _node_invitation(p: Probe[World]) -> Any:
    return await _node(p, "Invitation", p.world.to_invitee.id)


@MATRIX.operation("node(Product)")
async def _node_product(p: Probe[World]) -> Any:
    return await _node(p, "Product", p.world.product.id)


@MATRIX.operation("node(AuditEntry)")
async def _node_audit_entry(p: Probe[World]) -> Any:
    entry = await AuditEntry.filter(organization_id=p.world.acme.organization.id).first()
    return await _node(p, "AuditEntry", entry.id)


@MATRIX.operation("organization.seats")
async def _seats(p: Probe[World]) -> Any:
    return await _acme(p, "seats", "seats")


@MATRIX.operation("organization.viewerRole")
async def _viewer_role(p: Probe[World]) -> Any:
    return await _acme(p, "viewerRole", "viewerRole")


@MATRIX.operation("organization.members")
async def _members(p: Probe[World]) -> Any:
    found = await _acme(p, "members { edges { node { email role } } }", "members")
    expected = [{"node": {"email": p.world.acme.email(r), "role": r}} for r in TEAM_ROLES]
    return ok_if(found, {"edges": expected})


@MATRIX.operation("organization.invitations")
async def _invitations(p: Probe[World]) -> Any:
    found = await _acme(p, "invitations { edges { node { email status } } }",
                        "invitations")
    expected = [("newcomer@example.com", "PENDING"), ("invitee@example.com", "PENDING")] + [
        (p.world.acme.email(role), "ACCEPTED") for role in reversed(TEAM_ROLES[1:])
    ]
    return ok_if(found, {"edges": [{"node": {"email": e, "status": s}} for e, s in expected]})


@MATRIX.operation("organization.products")
async def _products(p: Probe[World]) -> Any:
    found = await _acme(p, "products { edges { node { slug } } }", "products")
    return ok_if(found, {"edges": [{"node": {"slug": "thermostat"}}]})


@MATRIX.operation("organization.auditLog")
async def _audit_log(p: Probe[World]) -> Any:
    found = await _acme(p, "auditLog(first: 2) { edges { node { action targetLabel } } }",
                        "auditLog")
    newest = [("team.invite", "newcomer@example.com"), ("team.invite", "invitee@example.com")]
    return ok_if(found, {"edges": [
        {"node": {"action": a, "targetLabel": t}} for a, t in newest
    ]})


@MATRIX.operation("product(idOrSlug)")
async def _product(p: Probe[World]) -> Any:
    found = await p.read("query($p: String!) { product(idOrSlug: $p) { productId slug } }",
                         {"p": "thermostat"}, "product")
    return ok_if(found, {"productId": p.world.product.id, "slug": "thermostat"})


@MATRIX.operation("product.oauthClients")
async def _oauth_clients(p: Probe[World]) -> Any:
    found = await p.read(
        "query($p: String!) { product(idOrSlug: $p) { oauthClients { clientId public } } }",
        {"p": str(p.world.product.id)}, "product", "oauthClients",
    )
    return ok_if(found, [{"clientId": p.world.client.client_id, "public": False},
                         {"clientId": p.world.server[0].client_id, "public": False},
                         {"clientId": p.world.mobile.client_id, "public": True}])


# --- Mutations ---------------------------------------------------------------------------------


@MATRIX.operation("updateOrganization")
async def _update_organization(p: Probe[World]) -> str:
    return await p.audited("updateOrganization", "UpdateOrganizationInput",
                           {"organizationId": p.world.acme_id, "name": "Acme Renamed"},
                           "organization { name }")


@MATRIX.operation("inviteTeamMember")
async def _invite(p: Probe[World]) -> str:
    return await p.audited(
        "inviteTeamMember", "InviteTeamMemberInput",
        {"organizationId": p.world.acme_id, "email": "newcomer@example.com", "role": "SUPPORT"},
        "invitation { id }",
    )


@MATRIX.operation("revokeInvitation", "revokeInvitation", "to_newcomer", "invitation { status }")
@MATRIX.operation("declineInvitation", "declineInvitation", "globex_to_invitee",
                  "invitation { status }")
@MATRIX.operation("acceptInvitation", "acceptInvitation", "to_invitee", "member { role }")
async def _answer_invitation(p: Probe[World], mutation: str, invitation: str, selection: str
                             ) -> str:
    return await p.audited(mutation, "InvitationInput",
                           {"invitationId": gid("Invitation", getattr(p.world, invitation).id)},
                           selection)


@MATRIX.operation("changeTeamMemberRole")
async def _change_role(p: Probe[World]) -> str:
    return await p.audited("changeTeamMemberRole", "ChangeTeamMemberRoleInput",
                           {"memberId": p.world.member_id("VIEWER"), "role": "SUPPORT"},
                           "member { role }")


@MATRIX.operation("removeTeamMember")
async def _remove(p: Probe[World]) -> str:
    return await p.audited("removeTeamMember", "MemberInput",
                           {"memberId": p.world.member_id("SUPPORT")}, "member { id }")


@MATRIX.operation("createProduct")
async def _create_product(p: Probe[World]) -> str:
    return await p.audited(
        "createProduct", "CreateProductInput",
        {"organizationId": p.world.acme_id, "name": "Doorbell", "platform": "Argon",
         "customerAuth": "TWO_LEGGED"},
        "product { productId }",
    )


@MATRIX.operation("updateProduct")
async def _update_product(p: Probe[World]) -> str:
    return await p.audited("updateProduct", "UpdateProductInput",
                           {"productId": gid("Product", p.world.product.id),
                            "description": "Keeps rooms warm."},
                           "product { description }")


@MATRIX.operation("createOAuthClient")
async def _create_client(p: Probe[World]) -> str:
    return await p.audited("createOAuthClient", "CreateOAuthClientInput",
                           {"productId": gid("Product", p.world.product.id), "name": "Backend",
                            "type": "SERVER"},
                           "clientSecret")


@MATRIX.operation("createOAuthClient(public)", "MOBILE")
@MATRIX.operation("createOAuthClient(public SERVER)", "SERVER")
async def _create_public_client(p: Probe[World], client_type: str) -> str:
    return await p.audited("createOAuthClient", "CreateOAuthClientInput",
                           {"productId": gid("Product", p.world.product.id), "name": "App",
                            "type": client_type, "public": True},
                           "oauthClient { public }")


@MATRIX.operation("rotateOAuthClientSecret(public)")
async def _rotate_public(p: Probe[World]) -> str:
    return await p.audited("rotateOAuthClientSecret", "OAuthClientInput",
                           {"clientId": p.world.mobile.client_id}, "clientSecret")


@MATRIX.operation("rotateOAuthClientSecret")
async def _rotate(p: Probe[World]) -> str:
    return await p.audited("rotateOAuthClientSecret", "OAuthClientInput",
                           {"clientId": p.world.client.client_id}, "clientSecret")


@MATRIX.operation("deleteOAuthClient")
async def _delete_client(p: Probe[World]) -> str:
    return await p.audited("deleteOAuthClient", "OAuthClientInput",
                           {"clientId": p.world.client.client_id}, "oauthClient { clientId }")


@MATRIX.operation("transferOwnership")
async def _transfer(p: Probe[World]) -> str:
    outcome = await p.audited("transferOwnership", "MemberInput",
                              {"memberId": p.world.member_id("DEVELOPER")}, "member { role }")
    if outcome == OK:  # hand it back, so the owner's remaining cells still see an owner
        acme = p.world.acme
        await team.transfer_ownership(acme.principals["DEVELOPER"], acme.memberships["OWNER"].id)
    return outcome




@MATRIX.operation("createOrganization")
async def _create_organization(p: Probe[World]) -> str:
    return await p.audited("createOrganization", "CreateOrganizationInput", {"name": "Initech"},
                           "organization { slug }")


@MATRIX.operation("leaveOrganization")
async def _leave(p: Probe[World]) -> str:
    return await p.audited("leaveOrganization", "LeaveOrganizationInput",
                           {"organizationId": p.world.acme_id}, "left")


def test_the_table_covers_every_operation_and_caller() -> None:
    MATRIX.assert_complete()


@pytest.mark.parametrize("caller", CALLERS)
async def test_permission_matrix(http, world: World, caller: str) -> None:
    token = await caller_token(http, caller, world.acme, clients={"server": world.server})
    await MATRIX.check(caller, Probe(http, token, world, caller=caller))
