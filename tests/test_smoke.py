from tests.support.accounts import signed_in_user
from tests.support.graphql import graphql


async def test_signed_in_user_sees_themselves(http):
    tokens = await signed_in_user(http, "ada@example.com")
    body = await graphql(http, "{ me { email } }", token=tokens["access_token"])
    assert body["data"] == {"me": {"email": "ada@example.com"}}
