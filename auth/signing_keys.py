"""The keys that sign ID tokens, and their rotation.

Keys form one chain (`SigningKey.generation` 1, 2, …). A key is published in the JWKS from its
creation; it signs from `activated_at` until `retired_at` (its successor's `activated_at`);
it stays published for `SIGNING_KEY_OVERLAP` after that, so that every ID token it signed can
be verified until it expires. A successor is created automatically one overlap before the
signing key reaches `SIGNING_KEY_ROTATION_DAYS`, so relying parties see it before it signs;
`rotate` replaces the signing key at once (a suspected leak). Creating the next key inserts the
next generation, unique: of several processes doing it at once, one wins and the others use its
key, so every process signs with the same one.

Each process holds the chain in memory until its next change it can foresee (a key starting or
stopping to sign, leaving the JWKS, a successor falling due) and for at most
`SIGNING_KEYS_HELD_SECONDS`, so that a rotation by another process (`devicecloud
rotate-signing-key`) is seen within that time; its own rotations are seen at once.

The private key is stored only encrypted: AES-256-GCM under a key derived from SECRET_KEY
(HKDF-SHA256), with the key ID as associated data, so a row cannot be passed off as another.
"""

from __future__ import annotations

import base64
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import anyio.to_thread
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from joserfc.jwk import RSAKey
from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from core import clock
from core.settings import SIGNING_KEYS_HELD_SECONDS, Settings
from models.oauth import SigningKey

ALGORITHM = "RS256"  # what every relying party supports (OpenID Connect Discovery §3)
RSA_BITS = 2048
_HKDF_INFO = b"devicecloud id-token signing keys v1"
_NONCE_BYTES = 12


class SigningKeyUnreadable(RuntimeError):
    """A stored private key does not decrypt under this SECRET_KEY."""


@dataclass(frozen=True)
class ActiveKey:
    """The signing key, decrypted."""

    kid: str
    algorithm: str
    private: RSAKey


def _cipher(secret_key: str) -> AESGCM:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(
        secret_key.encode()
    )
    return AESGCM(key)


def encrypt_private_key(secret_key: str, kid: str, pem: bytes) -> str:
    nonce = os.urandom(_NONCE_BYTES)
    sealed = _cipher(secret_key).encrypt(nonce, pem, kid.encode())
    return base64.urlsafe_b64encode(nonce + sealed).decode()


def decrypt_private_key(secret_key: str, row: SigningKey) -> bytes:
    raw = base64.urlsafe_b64decode(row.encrypted_private_key)
    try:
        return _cipher(secret_key).decrypt(
            raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], row.kid.encode()
        )
    except InvalidTag:
        raise SigningKeyUnreadable(
            f"The ID token signing key {row.kid} cannot be decrypted with this SECRET_KEY: it "
            "was encrypted under another one. Restore the SECRET_KEY it was created with, or "
            "run `devicecloud rotate-signing-key` to sign with a new key from now on (ID tokens "
            "the old key signed stay verifiable: only its public key is needed for that)."
        ) from None


_decrypted: dict[tuple[str, str], RSAKey] = {}  # (SECRET_KEY, kid): rows never change


def _private_key(settings: Settings, row: SigningKey) -> RSAKey:
    cached = _decrypted.get((settings.secret_key, row.kid))
    if cached is None:
        pem = decrypt_private_key(settings.secret_key, row)
        cached = RSAKey.import_key(pem, {"kid": row.kid, "alg": row.algorithm, "use": "sig"})
        _decrypted[(settings.secret_key, row.kid)] = cached
    return cached


def signing_key_at(keys: list[SigningKey], at: datetime) -> SigningKey | None:
    """The key that signs at `at`: the newest one activated by then and not yet retired."""
    signing = [k for k in keys
               if k.activated_at <= at and (k.retired_at is None or k.retired_at > at)]
    return max(signing, key=lambda k: k.generation, default=None)


def is_published(key: SigningKey, at: datetime, overlap: timedelta) -> bool:
    """Published from its creation until one overlap after it stopped signing, unless it was
    withdrawn before."""
    if key.withdrawn_at is not None and key.withdrawn_at <= at:
        return False
    return key.retired_at is None or key.retired_at > at - overlap


def _rotation(settings: Settings) -> timedelta:
    return timedelta(days=settings.signing_key_rotation_days)


def _overlap(settings: Settings) -> timedelta:
    return timedelta(seconds=settings.signing_key_overlap)


def _next_due(settings: Settings, latest: SigningKey, at: datetime) -> bool:
    """Whether the chain's newest key is due for a successor: one overlap before it reaches
    the rotation age (a pre-published successor is itself the newest key, not yet due)."""
    return at >= latest.activated_at + _rotation(settings) - _overlap(settings)


def _generate() -> tuple[str, bytes, dict[str, str]]:
    kid = secrets.token_urlsafe(12)
    key = RSAKey.generate_key(RSA_BITS, {"kid": kid, "alg": ALGORITHM, "use": "sig"})
    public = {name: str(value) for name, value in key.as_dict(private=False).items()}
    return kid, key.as_pem(private=True), public


async def _create_successor(settings: Settings, latest: SigningKey | None,
                            activated_at: datetime, *, withdraw: bool = False) -> bool:
    """Insert the next generation, signing from `activated_at`, and retire its predecessors
    then (`withdraw`: and take those it retires out of the JWKS at once). False when another
    process inserted it first. The stored row is read back and decrypted before the
    transaction commits: a key this process could not read never signs
    (`SigningKeyUnreadable`)."""
    kid, pem, public = await anyio.to_thread.run_sync(_generate)
    generation = latest.generation + 1 if latest else 1
    try:
        async with in_transaction():
            await SigningKey.create(
                generation=generation, kid=kid, algorithm=ALGORITHM, public_jwk=public,
                encrypted_private_key=encrypt_private_key(settings.secret_key, kid, pem),
                created_at=clock.now(), activated_at=activated_at,
            )
            _private_key(settings, await SigningKey.get(generation=generation))
            # Every key still signing (or yet to) at `activated_at` stops then.
            replaced = (Q(retired_at=None) | Q(retired_at__gt=activated_at)) & Q(
                generation__lt=generation)
            if withdraw:
                await SigningKey.filter(replaced).update(withdrawn_at=activated_at)
            await SigningKey.filter(replaced).update(retired_at=activated_at)
    except IntegrityError:
        forget_chain()  # another process changed the chain
        return False
    forget_chain()
    return True


async def _chain() -> list[SigningKey]:
    return await SigningKey.all().order_by("generation")


@dataclass(frozen=True)
class _HeldChain:
    keys: list[SigningKey]
    read_at: datetime
    valid_until: datetime


_held: _HeldChain | None = None


def forget_chain() -> None:
    """Drop the chain this process holds: the next use reads it again."""
    global _held
    _held = None


def _next_change(settings: Settings, keys: list[SigningKey], at: datetime) -> datetime:
    """The first moment after `at` when what the chain signs or publishes changes, or when it
    falls due for a successor; at most `SIGNING_KEYS_HELD_SECONDS` away."""
    overlap = _overlap(settings)
    moments = [keys[-1].activated_at + _rotation(settings) - overlap]
    for key in keys:
        moments.append(key.activated_at)
        if key.retired_at is not None:
            moments += [key.retired_at, key.retired_at + overlap]
    return min([m for m in moments if m > at] + [at + timedelta(seconds=SIGNING_KEYS_HELD_SECONDS)])


async def _maintained(settings: Settings) -> list[SigningKey]:
    """The chain, after creating the first key or the scheduled successor if due; the one
    this process holds while it is still valid."""
    global _held
    now = clock.now()
    held = _held
    if held is not None and held.read_at <= now < held.valid_until:
        return held.keys
    keys = await _chain()
    if not keys:
        await _create_successor(settings, None, now)
        keys = await _chain()
    elif _next_due(settings, keys[-1], now):
        latest = keys[-1]
        scheduled = latest.activated_at + _rotation(settings)
        # Published one overlap before it signs, also when the chain was left alone too long.
        await _create_successor(settings, latest, max(scheduled, now + _overlap(settings)))
        keys = await _chain()
    _held = _HeldChain(keys, now, _next_change(settings, keys, now))
    return keys


async def current(settings: Settings) -> ActiveKey:
    """The key that signs ID tokens now, creating or rotating keys when due."""
    keys = await _maintained(settings)
    row = signing_key_at(keys, clock.now())
    assert row is not None  # the first key signs from its creation, successors take over
    return ActiveKey(row.kid, row.algorithm, _private_key(settings, row))


async def published(settings: Settings) -> list[dict[str, str]]:
    """The public JWKs relying parties verify with: the signing key, its pre-published
    successor, and keys retired less than one overlap ago; newest first."""
    keys = await _maintained(settings)
    now = clock.now()
    return [k.public_jwk for k in reversed(keys) if is_published(k, now, _overlap(settings))]


async def rotate(settings: Settings, *, withdraw: bool = False
                 ) -> tuple[SigningKey, SigningKey | None]:
    """Replace the signing key now (`devicecloud rotate-signing-key`): a new key signs from
    this instant; the one it replaces stays published for one overlap, or with `withdraw`
    (a leaked key) leaves the JWKS at once with any pre-published successor, so that the ID
    tokens they signed stop verifying. Needs no private key decrypted, so it also replaces a
    key a lost SECRET_KEY made unreadable."""
    for _ in range(3):  # another process may rotate at the same instant: build on its key
        keys = await _chain()
        now = clock.now()
        previous = signing_key_at(keys, now)
        if await _create_successor(settings, keys[-1] if keys else None, now,
                                   withdraw=withdraw):
            return (await _chain())[-1], previous
    raise RuntimeError("Signing keys are being rotated concurrently; try again.")


async def check_readable(settings: Settings) -> None:
    """Fail (`SigningKeyUnreadable`) unless the signing key decrypts under SECRET_KEY: at
    start-up, so that a changed SECRET_KEY stops the process instead of every sign-in."""
    row = signing_key_at(await _chain(), clock.now())
    if row is not None:
        _private_key(settings, row)
