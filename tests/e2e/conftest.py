from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import requests
from argon2 import PasswordHasher
from oauthlib.oauth2 import Client
from requests_oauthlib import OAuth2Session

from auth import passwords
from fleet import products
from models.products import Product
from tests.conftest import LiveServer
from tests.helpers import organization_with_team

Recorder = Callable[[Client], tuple[OAuth2Session, list[requests.PreparedRequest]]]


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2id with its lowest cost instead of RFC 9106's (about 0.5 s a hash on a small CI
    machine): these tests sign in hundreds of times. The code path is unchanged: unknown
    accounts are still verified against the dummy hash."""
    hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    monkeypatch.setattr(passwords, "_hasher", hasher)
    monkeypatch.setattr(passwords, "_DUMMY_HASH", hasher.hash("not-a-real-password"))


@pytest.fixture
def oauth2_session(monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorder]:
    """requests-oauthlib sessions that record every request they send.

    requests is blocking and the server runs on the test's event loop: call the session only
    through `asyncio.to_thread`.
    """
    # oauthlib refuses plain-HTTP token endpoints unless told this is a test.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    sessions: list[OAuth2Session] = []

    def make(client: Client) -> tuple[OAuth2Session, list[requests.PreparedRequest]]:
        session = OAuth2Session(client=client)
        session.trust_env = False  # no proxy from the environment between us and 127.0.0.1
        sent: list[requests.PreparedRequest] = []

        def record(response: requests.Response, **_: object) -> None:
            sent.append(response.request)

        session.hooks["response"].append(record)
        sessions.append(session)
        return session, sent

    yield make
    for session in sessions:
        session.close()


@dataclass
class Products:
    p: Product
    q: Product


@pytest.fixture
async def fleet() -> Products:
    team = await organization_with_team(roles=("OWNER",))
    owner = team.principals["OWNER"]

    async def make(name: str) -> Product:
        return await products.create_product(
            owner, team.organization.id, name=name, slug=None, description="",
            platform="Photon", customer_auth="SIMPLE",
        )

    return Products(await make("Thermostat"), await make("Sprinkler"))


@pytest.fixture
def url(live_server: LiveServer) -> str:
    return live_server.url.replace("http://", "ws://") + "/device/v1"
