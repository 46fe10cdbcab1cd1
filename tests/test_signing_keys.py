"""The ID token signing keys: encrypted at rest, one chain however many processes create keys at
once, published from before they sign until one overlap after they stop, rotated by age and on
demand."""

from __future__ import annotations

import asyncio
import base64
import os
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey
from pydantic import ValidationError
from tortoise import connections

from api.app import create_app
from auth import signing_keys
from core.settings import SIGNING_KEYS_HELD_SECONDS, Settings, get_settings
from models.oauth import SigningKey
from tests.support.database import recorded_queries
from tests.support.servers import Clock

ROOT = Path(__file__).resolve().parent.parent
DAY = timedelta(days=1)


@pytest.fixture
def settings() -> Settings:
    return get_settings()


async def kids() -> list[str]:
    return [k.kid for k in await SigningKey.all().order_by("generation")]


async def published_kids(settings: Settings) -> list[str]:
    return [k["kid"] for k in await signing_keys.published(settings)]


async def test_the_private_key_is_stored_encrypted(settings, frozen_clock):
    key = await signing_keys.current(settings)
    [row] = await connections.get("default").execute_query_dict(
        "SELECT * FROM oauth_signing_keys")
    stored = " ".join(str(value) for value in row.values())
    pem = key.private.as_pem(private=True).decode()
    assert "PRIVATE KEY" not in stored
    assert pem.splitlines()[1] not in stored  # not the PEM's base64 either
    private_exponent = key.private.as_dict(private=True)["d"]
    assert private_exponent not in stored
    assert set((await SigningKey.get()).public_jwk) == {"kty", "n", "e", "kid", "alg", "use"}
    # What is stored is a 12-byte nonce and the sealed PEM (plus its 16-byte tag).
    sealed = base64.urlsafe_b64decode(row["encrypted_private_key"])
    assert len(sealed) == 12 + len(pem.encode()) + 16
    # The public half signs nothing, but verifies what the key signs.
    token = jwt.encode({"alg": "RS256", "kid": key.kid}, {"sub": "x"}, key.private, ["RS256"])
    public = RSAKey.import_key((await signing_keys.published(settings))[0])
    assert not public.is_private
    assert jwt.decode(token, public, ["RS256"]).claims == {"sub": "x"}


async def test_a_wrong_secret_key_fails_loudly(settings, frozen_clock):
    key = await signing_keys.current(settings)
    other = settings.model_copy(update={"secret_key": "another-" + "s" * 40})
    message = (f"The ID token signing key {key.kid} cannot be decrypted with this SECRET_KEY: "
               "it was encrypted under another one. Restore the SECRET_KEY it was created "
               "with, or run `devicecloud rotate-signing-key` to sign with a new key from now "
               "on (ID tokens the old key signed stay verifiable: only its public key is "
               "needed for that).")
    with pytest.raises(signing_keys.SigningKeyUnreadable) as refused:
        await signing_keys.check_readable(other)
    assert str(refused.value) == message
    with pytest.raises(signing_keys.SigningKeyUnreadable):
        await signing_keys.current(other)
    # A key's ciphertext is bound to its kid: moved to another row, it does not decrypt.
    row = await SigningKey.get(kid=key.kid)
    row.kid = "another-kid"
    with pytest.raises(signing_keys.SigningKeyUnreadable):
        signing_keys.decrypt_private_key(settings.secret_key, row)
    # Rotating needs no private key: it replaces an unreadable one.
    new, old = await signing_keys.rotate(other)
    assert old is not None and old.kid == key.kid
    assert (await signing_keys.current(other)).kid == new.kid
    await signing_keys.check_readable(other)


async def test_the_app_refuses_to_start_with_a_wrong_secret_key(settings, frozen_clock):
    key = await signing_keys.current(settings)
    app = create_app(settings.model_copy(update={"secret_key": "another-" + "s" * 40}),
                     manage_database=False)
    with pytest.raises(signing_keys.SigningKeyUnreadable, match=key.kid):
        async with app.router.lifespan_context(app):
            pytest.fail("the app started")


async def test_a_new_key_that_does_not_decrypt_is_never_stored(settings, frozen_clock,
                                                              monkeypatch):
    """`rotate` reads back and decrypts the key it wrote before committing it: a key this
    process could not read never signs."""
    first = (await signing_keys.current(settings)).kid
    sealed_by_another = signing_keys.encrypt_private_key

    def under_another_secret(secret_key: str, kid: str, pem: bytes) -> str:
        return sealed_by_another("another-" + "s" * 40, kid, pem)

    monkeypatch.setattr(signing_keys, "encrypt_private_key", under_another_secret)
    with pytest.raises(signing_keys.SigningKeyUnreadable):
        await signing_keys.rotate(settings)
    assert await kids() == [first]
    assert (await SigningKey.get()).retired_at is None


async def test_concurrent_first_use_creates_one_signing_key(settings, frozen_clock):
    keys = await asyncio.gather(*(signing_keys.current(settings) for _ in range(6)))
    assert await SigningKey.all().count() == 1
    assert {key.kid for key in keys} == {(await SigningKey.get()).kid}


async def test_concurrent_rotations_build_one_chain(settings, frozen_clock):
    await signing_keys.current(settings)
    await asyncio.gather(*(signing_keys.rotate(settings) for _ in range(3)))
    rows = await SigningKey.all().order_by("generation")
    assert [row.generation for row in rows] == [1, 2, 3, 4]
    signing = signing_keys.signing_key_at(rows, frozen_clock.current)
    assert signing is not None and signing.kid == rows[-1].kid


async def test_keys_rotate_by_age_published_before_they_sign(settings, frozen_clock: Clock):
    rotation = timedelta(days=settings.signing_key_rotation_days)
    overlap = timedelta(seconds=settings.signing_key_overlap)
    start = frozen_clock.current
    first = (await signing_keys.current(settings)).kid
    assert await published_kids(settings) == [first]

    # One overlap before the rotation age: the successor is created and published, not used.
    frozen_clock.current = start + rotation - overlap - timedelta(seconds=1)
    assert (await signing_keys.current(settings)).kid == first
    assert await SigningKey.all().count() == 1
    frozen_clock.current = start + rotation - overlap
    assert (await signing_keys.current(settings)).kid == first
    second = (await kids())[1]
    assert await published_kids(settings) == [second, first]
    rows = await SigningKey.all().order_by("generation")
    assert (rows[1].created_at, rows[1].activated_at) == (frozen_clock.current, start + rotation)
    assert rows[0].retired_at == start + rotation

    # At the rotation age the successor signs; the old key stays published one overlap.
    frozen_clock.current = start + rotation
    assert (await signing_keys.current(settings)).kid == second
    frozen_clock.current = start + rotation + overlap - timedelta(seconds=1)
    assert await published_kids(settings) == [second, first]
    frozen_clock.current = start + rotation + overlap
    assert await published_kids(settings) == [second]


async def test_a_chain_left_alone_past_its_age_still_publishes_ahead(settings, frozen_clock):
    start = frozen_clock.current
    first = (await signing_keys.current(settings)).kid
    frozen_clock.advance(days=settings.signing_key_rotation_days * 2)
    # The old key signs one overlap more, while its successor is published.
    assert (await signing_keys.current(settings)).kid == first
    [_, successor] = await SigningKey.all().order_by("generation")
    assert successor.activated_at == frozen_clock.current + timedelta(
        seconds=settings.signing_key_overlap)
    assert successor.activated_at > start


async def test_rotation_on_demand_signs_with_the_new_key_at_once(settings, frozen_clock):
    first = (await signing_keys.current(settings)).kid
    new, old = await signing_keys.rotate(settings)
    assert old is not None and old.kid == first
    assert (await signing_keys.current(settings)).kid == new.kid
    assert await published_kids(settings) == [new.kid, first]
    row = await SigningKey.get(kid=first)
    assert row.retired_at == frozen_clock.current == new.activated_at


async def test_rotation_on_demand_retires_a_pre_published_successor(settings, frozen_clock):
    rotation = timedelta(days=settings.signing_key_rotation_days)
    overlap = timedelta(seconds=settings.signing_key_overlap)
    start = frozen_clock.current
    await signing_keys.current(settings)
    frozen_clock.current = start + rotation - overlap
    await signing_keys.current(settings)  # the successor, published, signing later
    new, _ = await signing_keys.rotate(settings)
    rows = await SigningKey.all().order_by("generation")
    assert [row.retired_at for row in rows] == [frozen_clock.current, frozen_clock.current,
                                                None]
    assert (await signing_keys.current(settings)).kid == new.kid
    # The successor never signed: still published for the overlap, like any retired key.
    assert await published_kids(settings) == [rows[2].kid, rows[1].kid, rows[0].kid]


def test_the_overlap_covers_an_id_token_and_fits_a_rotation() -> None:
    key = "k" * 40
    with pytest.raises(ValidationError, match="SIGNING_KEY_OVERLAP must be at least "
                                              "ID_TOKEN_LIFETIME"):
        Settings(secret_key=key, id_token_lifetime=7200, signing_key_overlap=3600)
    with pytest.raises(ValidationError) as refused:
        Settings(secret_key=key, id_token_lifetime=60, signing_key_overlap=360)
    assert refused.value.errors()[0]["msg"] == (
        "Value error, SIGNING_KEY_OVERLAP must be longer than 360 seconds: a new key is "
        "published that long before it signs, and relying parties may cache the JWKS for 300 "
        "seconds after every process serves it (within 60 seconds)")
    Settings(secret_key=key, id_token_lifetime=60, signing_key_overlap=361)
    with pytest.raises(ValidationError, match="SIGNING_KEY_OVERLAP must be shorter than "
                                              "SIGNING_KEY_ROTATION_DAYS"):
        Settings(secret_key=key, signing_key_rotation_days=1, signing_key_overlap=86400)
    Settings(secret_key=key, id_token_lifetime=3600, signing_key_overlap=3600,
             signing_key_rotation_days=1)


async def test_the_rotate_signing_key_command(settings, database_url, frozen_clock):
    first = (await signing_keys.current(settings)).kid
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "api.cli", "rotate-signing-key", cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(child.communicate(), timeout=60)
    assert child.returncode == 0, err.decode()
    [_, new] = await kids()
    assert out.decode() == (
        f"ID tokens are signed with the new key {new} from now on.\n"
        f"The key {first} no longer signs; it stays in the JWKS for "
        f"{settings.signing_key_overlap} seconds, so the ID tokens it signed stay verifiable "
        "until they expire.\n")


def key_queries(seen: list[str]) -> list[str]:
    return [query for query in seen if "oauth_signing_keys" in query]


async def test_the_chain_is_held_in_memory_and_another_process_rotation_is_seen(
        settings, database_url, frozen_clock, http):
    """ID tokens and JWKS fetches read no key from the database while the chain this process
    holds is valid; a rotation by another process is seen once it is `SIGNING_KEYS_HELD_SECONDS`
    old."""
    first = (await signing_keys.current(settings)).kid
    with pytest.MonkeyPatch.context() as recording, recorded_queries(recording) as seen:
        for _ in range(3):
            assert (await signing_keys.current(settings)).kid == first
            assert await published_kids(settings) == [first]
            jwks = await http.get("/oauth/jwks")
            assert [key["kid"] for key in jwks.json()["keys"]] == [first]
    assert key_queries(seen) == []

    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "api.cli", "rotate-signing-key", cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(child.communicate(), timeout=60)
    assert child.returncode == 0, err.decode()
    [_, new] = await kids()
    frozen_clock.advance(seconds=SIGNING_KEYS_HELD_SECONDS - 1)
    assert (await signing_keys.current(settings)).kid == first
    frozen_clock.advance(seconds=1)
    assert (await signing_keys.current(settings)).kid == new
    assert await published_kids(settings) == [new, first]


async def test_the_held_chain_expires_at_its_next_change(settings, frozen_clock, monkeypatch):
    """A successor falling due, one overlap before the rotation age, is created on time
    though the chain was read a second before."""
    monkeypatch.setattr(settings, "signing_key_rotation_days", 1)
    monkeypatch.setattr(settings, "signing_key_overlap", 3600)
    start = frozen_clock.current
    first = (await signing_keys.current(settings)).kid
    frozen_clock.current = start + DAY - timedelta(hours=1, seconds=1)
    with pytest.MonkeyPatch.context() as recording, recorded_queries(recording) as seen:
        assert await published_kids(settings) == [first]
    assert key_queries(seen) != []
    frozen_clock.advance(seconds=1)
    [_, second] = [k["kid"] for k in reversed(await signing_keys.published(settings))]
    assert await kids() == [first, second]
    frozen_clock.current = start + DAY
    assert (await signing_keys.current(settings)).kid == second


async def test_rotate_signing_key_withdraw_removes_the_replaced_key_at_once(
        settings, database_url, frozen_clock, monkeypatch):
    """A leaked key: withdrawn with its pre-published successor, both leave the JWKS at once
    (their ID tokens stop verifying); a key retired before keeps its overlap. The chain is
    built in the recent past, as the command runs on the real clock."""
    monkeypatch.setattr(settings, "signing_key_rotation_days", 1)
    monkeypatch.setattr(settings, "signing_key_overlap", 13 * 3600)
    hour = timedelta(hours=1)
    start = frozen_clock.current
    frozen_clock.current = start - 12 * hour - timedelta(seconds=1)
    first = (await signing_keys.current(settings)).kid
    frozen_clock.current = start - 12 * hour
    leaked, _ = await signing_keys.rotate(settings)
    frozen_clock.current = start - hour  # one overlap before the rotation age
    await signing_keys.current(settings)
    [_, _, successor] = await kids()

    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "api.cli", "rotate-signing-key", "--withdraw", cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(child.communicate(), timeout=60)
    assert child.returncode == 0, err.decode()
    new = (await kids())[-1]
    assert out.decode() == (
        f"ID tokens are signed with the new key {new} from now on.\n"
        f"The key {leaked.kid} no longer signs and is withdrawn from the JWKS: the ID tokens it "
        "signed no longer verify.\n")
    signing_keys.forget_chain()  # as this process would within a minute
    rows = {row.kid: row for row in await SigningKey.all()}
    now = rows[new].activated_at
    assert [rows[k].withdrawn_at for k in (first, leaked.kid, successor, new)] == [
        None, now, now, None]
    frozen_clock.current = now
    assert await published_kids(settings) == [new, first]
    assert (await signing_keys.current(settings)).kid == new
