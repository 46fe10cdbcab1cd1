"""How an authorization request's redirect URI is matched against the registered ones: exactly
(RFC 9700 §4.1.3), except loopback IP literals (all of 127.0.0.0/8, and ::1), which match on
any port (RFC 8252 §7.3)."""

from __future__ import annotations

import pytest

from auth.oauth_common import Client
from models.oauth import OAuthClient

REGISTERED = [
    "http://127.0.0.1/callback",
    "http://127.0.0.2/callback",
    "http://[::1]:8080/cb?app=cli",
    "http://localhost:8080/callback",
    "https://app.example.com/callback",
    "com.example.app:/callback",
]


@pytest.mark.parametrize(("requested", "matches"), [
    ("http://127.0.0.1/callback", True),
    ("http://127.0.0.1:53682/callback", True),
    ("http://127.0.0.1:1/callback", True),
    ("http://[::1]/cb?app=cli", True),  # registered with a port: any port still matches
    ("http://[::1]:49152/cb?app=cli", True),
    ("http://localhost:8080/callback", True),
    ("https://app.example.com/callback", True),
    ("com.example.app:/callback", True),
    ("http://127.0.0.1:53682/callback/", False),  # another path
    ("http://127.0.0.1:53682/other", False),
    ("http://127.0.0.1:53682/callback?x=1", False),  # another query
    ("http://[::1]:49152/cb", False),
    ("http://127.0.0.2:53682/callback", True),  # any loopback address of 127.0.0.0/8
    ("http://127.0.0.3:53682/callback", False),  # another loopback address: not registered
    ("http://127.0.0.1:53682/cb?app=cli", False),  # registered for [::1], not 127.0.0.1
    ("https://127.0.0.1:53682/callback", False),  # another scheme
    ("http://127.0.0.1:53682/callback#x", False),  # a fragment
    ("http://user@127.0.0.1:53682/callback", False),  # userinfo
    ("http://127.0.0.1:99999/callback", False),  # not a port
    ("http://127.0.0.1:port/callback", False),
    ("http://[::1/cb?app=cli", False),  # not a URI
    ("http://localhost:9090/callback", False),  # localhost matches exactly
    ("http://localhost/callback", False),
    ("https://app.example.com:8443/callback", False),  # https matches exactly
    ("com.example.app:/callback?x=1", False),
])
def test_a_redirect_uri_matches_exactly_or_as_loopback_on_any_port(requested, matches):
    client = Client(OAuthClient(client_id="c", redirect_uris=REGISTERED))
    assert client.check_redirect_uri(requested) is matches
