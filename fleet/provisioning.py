"""The device registry: devices made at the factory, before any product has them."""

from __future__ import annotations

import secrets

from tortoise.transactions import in_transaction

from auth import tokens
from core import clock
from core.errors import CoreCode, InvalidInput
from fleet.products import clean_platform
from models.devices import Device

MAX_COUNT = 1_000_000
BATCH_SIZE = 1000
DEVICE_SECRET_PREFIX = "dc_ds_"  # noqa: S105 - a prefix, not a secret


def new_device_id() -> str:
    """A random device ID: 96 bits as 24 lower-case hex characters."""
    return secrets.token_hex(12)


async def provision_devices(count: int, platform: str) -> list[tuple[str, str]]:
    """Create `count` devices for `platform`, in one transaction, and return each one's
    `(device_id, secret)`. Only the secrets' SHA-256 hashes are stored: this is the one
    chance to record them."""
    if not 1 <= count <= MAX_COUNT:
        raise InvalidInput(f"Provision between 1 and {MAX_COUNT:,} devices at a time.",
                           field="count", code=CoreCode.OUT_OF_RANGE)
    platform = clean_platform(platform)
    now = clock.now()
    created: list[tuple[str, str]] = []
    async with in_transaction():
        while len(created) < count:
            batch = {new_device_id() for _ in range(min(BATCH_SIZE, count - len(created)))}
            # 96 random bits make a collision with an existing device all but impossible;
            # checking costs one indexed query a batch and makes it impossible.
            taken = await Device.filter(id__in=list(batch)).values_list("id", flat=True)
            batch.difference_update(taken)
            pairs = [(device_id, tokens.generate(DEVICE_SECRET_PREFIX)) for device_id in batch]
            await Device.bulk_create([
                Device(id=device_id, secret_hash=tokens.digest(secret), platform=platform,
                       provisioned_at=now)
                for device_id, secret in pairs
            ])
            created.extend(pairs)
    return created
