"""End-to-end tests sign in through the real grants, hundreds of times: hash cheaply."""

import pytest


@pytest.fixture(autouse=True)
def _cheap_sign_ins(cheap_password_hashing: None) -> None:
    """Every test here uses `cheap_password_hashing`."""
