"""The claims of ID tokens and userinfo come from the rows a grant already holds: a product's
customer's linked account is read only when the scope asks for its email."""

from __future__ import annotations

import pytest

from auth import oidc
from models.customers import Customer
from tests.support.accounts import make_user
from tests.support.database import recorded_queries
from tests.support.worlds import Products


async def test_a_customer_s_account_is_read_only_for_its_email(two_products: Products):
    user = await make_user("ada@example.com")
    customer = await Customer.create(product=two_products.p, email="ada@example.com",
                                     user=user, created_at=user.created_at)
    held = await Customer.get(id=customer.id)  # as a token's family holds it: no account
    with pytest.MonkeyPatch.context() as recording, recorded_queries(recording) as seen:
        claims = await oidc.user_info(held, "openid profile")
    assert (dict(claims), seen) == ({"sub": f"customer:{customer.id}"}, [])

    with pytest.MonkeyPatch.context() as recording, recorded_queries(recording) as seen:
        claims = await oidc.user_info(held, "openid email")
    assert dict(claims) == {"sub": f"customer:{customer.id}", "email": "ada@example.com",
                            "email_verified": True}
    assert len(seen) == 1 and '"users"' in seen[0]


async def test_a_user_s_claims_need_no_read():
    user = await make_user("ada@example.com")
    with pytest.MonkeyPatch.context() as recording, recorded_queries(recording) as seen:
        claims = await oidc.user_info(user, "openid email")
    assert dict(claims) == {"sub": f"user:{user.id}", "email": "ada@example.com",
                            "email_verified": True}
    assert seen == []
