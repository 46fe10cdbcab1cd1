"""The plan catalog, in one place: what each plan allows and what it costs.

From the billing rules (SPEC, "Billing (usage: data operations and devices)"): FREE allows 100
devices and 100,000 data operations a month; BASIC is sold in blocks of 100 devices and 720,000
data operations a month at $299 a block a month; ENTERPRISE is by contract: its limits are the
organization's own, and some contracts include the manufacturing grace period. Money is integer
cents, always.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from billing.periods import Period


class PlanKind(StrEnum):
    FREE = "FREE"
    BASIC = "BASIC"
    ENTERPRISE = "ENTERPRISE"


@dataclass(frozen=True, slots=True)
class Limits:
    """What a plan allows in one period."""

    devices: int
    data_operations: int

    def __post_init__(self) -> None:
        if self.devices < 1 or self.data_operations < 1:
            raise ValueError("A limit is at least 1.")

    def times(self, blocks: int) -> Limits:
        return Limits(self.devices * blocks, self.data_operations * blocks)


@dataclass(frozen=True, slots=True)
class Plan:
    """A plan of the catalog. `block` is what one block allows and `block_price_cents` what it
    costs a month; both are None for ENTERPRISE, whose limits and price are a contract's.
    `max_blocks` is None where an organization may add blocks without bound."""

    kind: PlanKind
    block: Limits | None
    block_price_cents: int | None
    max_blocks: int | None


CATALOG: dict[PlanKind, Plan] = {
    PlanKind.FREE: Plan(PlanKind.FREE, Limits(devices=100, data_operations=100_000),
                        block_price_cents=0, max_blocks=1),
    PlanKind.BASIC: Plan(PlanKind.BASIC, Limits(devices=100, data_operations=720_000),
                         block_price_cents=29_900, max_blocks=None),
    PlanKind.ENTERPRISE: Plan(PlanKind.ENTERPRISE, None, block_price_cents=None, max_blocks=1),
}
# New organizations start here (issue 13, point 7).
DEFAULT_PLAN = PlanKind.FREE


@dataclass(frozen=True, slots=True)
class Contract:
    """An ENTERPRISE organization's contract: its own limits, and whether it includes the
    manufacturing grace period."""

    limits: Limits
    manufacturing_grace: bool = False


@dataclass(frozen=True, slots=True)
class Subscription:
    """An organization's plan, how many blocks it has, and its contract if ENTERPRISE.
    Combinations the catalog does not sell (blocks of FREE, a contract on BASIC, ENTERPRISE
    without one) raise `ValueError`."""

    plan: PlanKind
    blocks: int = 1
    contract: Contract | None = None

    def __post_init__(self) -> None:
        terms = CATALOG[self.plan]
        if self.blocks < 1 or (terms.max_blocks is not None and self.blocks > terms.max_blocks):
            raise ValueError(f"{self.plan} is not sold as {self.blocks} blocks.")
        if (self.contract is None) != (self.plan is not PlanKind.ENTERPRISE):
            raise ValueError("ENTERPRISE, and only ENTERPRISE, is by contract.")

    @property
    def limits(self) -> Limits:
        """The limits of one period: a block's times the blocks, or the contract's."""
        if self.contract is not None:
            return self.contract.limits
        block = CATALOG[self.plan].block
        assert block is not None  # every plan but ENTERPRISE has a block
        return block.times(self.blocks)

    @property
    def monthly_price_cents(self) -> int | None:
        """What a month costs, in cents; None for ENTERPRISE, priced by its contract."""
        price = CATALOG[self.plan].block_price_cents
        return None if price is None else price * self.blocks

    @property
    def manufacturing_grace(self) -> bool:
        return self.contract is not None and self.contract.manufacturing_grace


# Warnings go out as usage reaches each of these percentages of a limit (issue 13, point 8).
THRESHOLDS = (70, 90, 100)


def thresholds_crossed(before: int, after: int, limit: int) -> tuple[int, ...]:
    """The thresholds that usage going from `before` to `after` reaches, in order: each one at
    or under `after` and above `before`, as a share of `limit`. A batch that jumps from 69% to
    95% crosses 70 and 90; reaching 70% exactly crosses 70. Integer arithmetic, so a threshold
    is crossed exactly when the usage reaches it, never a rounding early or late."""
    if limit < 1:
        raise ValueError(f"A limit is at least 1, not {limit}.")
    if not 0 <= before <= after:
        raise ValueError(f"Usage only grows within a period: {before} → {after}.")
    return tuple(t for t in THRESHOLDS if before * 100 < t * limit <= after * 100)


# How long a FREE organization's devices keep running after it reached 100 % of its data
# operations (issue 13, point 9).
GRACE = timedelta(days=3)


def grace_end(crossed_at: datetime, period: Period) -> datetime | None:
    """When the grace after reaching 100 % of the data operations at `crossed_at` (in `period`)
    ends and the pause begins; None when it would not end before the period does (the next
    period comes first: no pause)."""
    end = crossed_at + GRACE
    return end if end < period.end else None


def grace_text() -> str:
    """The grace as the texts name it: "3-day"."""
    return f"{GRACE.days}-day"
