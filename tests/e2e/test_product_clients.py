"""Product OAuth clients at the token endpoint."""

from __future__ import annotations

import pytest

from fleet import products
from tests.support.accounts import organization_with_team
from tests.support.constants import PASSWORD


@pytest.mark.parametrize(
    ("client_type", "error"),
    # The apps sign in the product's customers, so a platform account's email is just not one
    # of them; the SERVER client has no password grant at all.
    [("WEB", "invalid_grant"), ("MOBILE", "invalid_grant"), ("SERVER", "unauthorized_client")],
)
async def test_product_clients_cannot_sign_in_platform_accounts(http, client_type, error):
    team = await organization_with_team(roles=("OWNER",))
    owner = team.principals["OWNER"]
    product = await products.create_product(
        owner, team.organization.id, name="Thermostat", slug=None, description="",
        platform="Photon", customer_auth="SIMPLE",
    )
    uris = ["https://app.example.com/callback"] if client_type == "WEB" else []
    client, secret = await products.create_oauth_client(
        owner, product.id, name="App", client_type=client_type, redirect_uris=uris
    )
    response = await http.post(
        "/oauth/token",
        data={"grant_type": "password", "username": team.email("OWNER"), "password": PASSWORD},
        auth=(client.client_id, secret),
    )
    assert response.status_code == 400
    assert response.json()["error"] == error
    refresh = await http.post(
        "/oauth/token", data={"grant_type": "refresh_token", "refresh_token": "dc_rt_x"},
        auth=(client.client_id, secret),
    )
    assert refresh.json()["error"] == error
