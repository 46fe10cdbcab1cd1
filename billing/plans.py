"""The plan catalog, in one place: what each plan allows and what it costs.

From the billing rules (SPEC, "Billing (usage: data operations and devices)"): FREE allows 100
devices and 100,000 data operations a month; BASIC is sold in blocks of 100 devices and 720,000
data operations a month at $299 a block a month; ENTERPRISE is by contract: its limits are the
organization's own, and some contracts include the manufacturing grace period. From the team
plan's rules (SPEC, "Billing (team plan)"): TEAM costs $49 per team member a month, monthly or
annual (annual pays 12 months at once), and TEAM and BASIC start with a free trial. Our
decision where the seeds are silent: TEAM's usage limits are one block, included in the seats'
price, and further blocks are added as on BASIC, each at BASIC's block price. Money is integer
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
    TEAM = "TEAM"
    ENTERPRISE = "ENTERPRISE"


class Interval(StrEnum):
    """How often a subscription is charged: every month, or 12 months at once."""

    MONTHLY = "MONTHLY"
    ANNUAL = "ANNUAL"

    @property
    def months(self) -> int:
        """The months one period of this interval lasts: 1 or 12."""
        return 12 if self is Interval.ANNUAL else 1


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
    """A plan of the catalog. `block` is what one block allows and `block_price_cents` what a
    block beyond the `included_blocks` costs a month; both are None for ENTERPRISE, whose
    limits and price are a contract's. `max_blocks` is None where an organization may add
    blocks without bound. `seat_price_cents` is what each team member costs a month on a plan
    priced per seat (TEAM), None on the others."""

    kind: PlanKind
    block: Limits | None
    block_price_cents: int | None
    max_blocks: int | None
    seat_price_cents: int | None = None
    included_blocks: int = 0


CATALOG: dict[PlanKind, Plan] = {
    PlanKind.FREE: Plan(PlanKind.FREE, Limits(devices=100, data_operations=100_000),
                        block_price_cents=0, max_blocks=1),
    PlanKind.BASIC: Plan(PlanKind.BASIC, Limits(devices=100, data_operations=720_000),
                         block_price_cents=29_900, max_blocks=None),
    PlanKind.TEAM: Plan(PlanKind.TEAM, Limits(devices=100, data_operations=720_000),
                        block_price_cents=29_900, max_blocks=None, seat_price_cents=4_900,
                        included_blocks=1),
    PlanKind.ENTERPRISE: Plan(PlanKind.ENTERPRISE, None, block_price_cents=None, max_blocks=1),
}
# New organizations start here (issue 13, point 7).
DEFAULT_PLAN = PlanKind.FREE


def _check_blocks(plan: PlanKind, blocks: int) -> None:
    """`ValueError` unless the catalog sells `plan` as `blocks` blocks."""
    most = CATALOG[plan].max_blocks
    if blocks < 1 or (most is not None and blocks > most):
        raise ValueError(f"{plan} is not sold as {blocks} blocks.")


def period_price_cents(plan: PlanKind, interval: Interval, *, seats: int, blocks: int) -> int:
    """What one full period of a subscription costs, in cents: FREE 0; BASIC blocks * 29,900
    a month; TEAM seats * 4,900 a month plus 29,900 a month for each block after the first;
    times the interval's months (12 for ANNUAL: TEAM with 1 member is 58,800 a year).
    `seats` are the accepted team members, the owner included, so at least 1 on every plan
    (only TEAM's price depends on them). `ValueError` for ENTERPRISE (priced by its
    contract), for fewer than 1 seat, and for blocks the catalog does not sell (FREE's 2)."""
    terms = CATALOG[plan]
    if terms.block_price_cents is None:
        raise ValueError(f"{plan} is priced by its contract, not by the catalog.")
    if seats < 1:
        raise ValueError(f"A subscription has at least 1 seat (its owner), not {seats}.")
    _check_blocks(plan, blocks)
    seat_price = (terms.seat_price_cents or 0) * seats
    block_price = terms.block_price_cents * (blocks - terms.included_blocks)
    return (seat_price + block_price) * interval.months


# The free trial's length by default; the engine passes its configured length to `trial_end`.
TRIAL = timedelta(days=14)


def has_trial(plan: PlanKind) -> bool:
    """Whether a new subscription to `plan` starts with a free trial: TEAM and BASIC do."""
    return plan in (PlanKind.TEAM, PlanKind.BASIC)


def trial_end(plan: PlanKind, started: datetime, *, length: timedelta = TRIAL
              ) -> datetime | None:
    """When the free trial of a subscription to `plan` started at `started` ends (the first
    charge's moment): `started + length`; None when `plan` has no trial or `length` is zero
    (trials turned off). A naive `started` or a negative `length` is `ValueError`."""
    if started.tzinfo is None or started.utcoffset() is None:
        raise ValueError("A trial starts at an aware datetime; this one is naive.")
    if length < timedelta(0):
        raise ValueError(f"A trial lasts no less than nothing, not {length}.")
    if not has_trial(plan) or not length:
        return None
    return started + length


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
        _check_blocks(self.plan, self.blocks)
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
        """What a month costs, in cents; None for ENTERPRISE, priced by its contract, and for
        TEAM, priced by its seats, which a subscription does not know (`period_price_cents`
        prices them)."""
        if self.plan is PlanKind.TEAM or self.plan is PlanKind.ENTERPRISE:
            return None
        return period_price_cents(self.plan, Interval.MONTHLY, seats=1, blocks=self.blocks)

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
