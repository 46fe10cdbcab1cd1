"""Billable devices: which devices an organization is billed for in a period.

The rule (SPEC's "Billable devices" and "Manufacturing grace period", the billing document's
"Device counts"), for every device of every product of the organization:
- a device is billable once it has come online at least once by the period's end, and in every
  period after that, online or not;
- a cellular device whose SIM was deactivated for the whole period is not billable in it;
- there is no proration, and claiming changes nothing (the rule does not look at claims);
- with the manufacturing grace period (some ENTERPRISE contracts), a period among the first six
  billing periods of the device in which it did not come online does not count it; from the
  seventh on it counts whether it came online or not.

"The first six billing periods" start with the period of the first online, the device's first
billing period: first online in January, February to June are graced, July on is not (the
month of the first online is always billable anyway, since the device came online in it).
"""

from __future__ import annotations

from dataclasses import dataclass

from billing.periods import Period

GRACE_PERIODS = 6


@dataclass(frozen=True, slots=True)
class DeviceActivity:
    """What the rule needs to know of one device in one period."""

    period: Period
    came_online: bool
    # Only ever true for a cellular device.
    sim_deactivated_whole_period: bool = False


def is_billable(activity: DeviceActivity, first_online: Period | None, *,
                manufacturing_grace: bool) -> bool:
    """Whether the device is billable in `activity.period`. `first_online` is the period it
    first came online in (None: never yet). An activity that contradicts `first_online` (online
    in a period before the first online, or not online in the period of the first online)
    raises `ValueError`."""
    period = activity.period
    if activity.came_online and (first_online is None or period < first_online):
        raise ValueError(f"The device came online in {period}, before its first online.")
    if period == first_online and not activity.came_online:
        raise ValueError(f"The device first came online in {period}, so it came online in it.")
    if first_online is None or period < first_online:
        return False
    if activity.sim_deactivated_whole_period:
        return False
    in_grace = manufacturing_grace and period.months_since(first_online) < GRACE_PERIODS
    return activity.came_online or not in_grace
