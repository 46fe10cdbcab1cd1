"""Token buckets: a steady rate with bursts, on the one clock (so tests need no sleeping)."""

from __future__ import annotations

from datetime import datetime

from core import clock


class TokenBucket:
    """Allow `rate` actions per second on average, and up to `burst` at once."""

    def __init__(self, rate: float, burst: int):
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs a positive rate and a burst of at least 1")
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._updated: datetime = clock.now()

    def take(self) -> bool:
        """Spend one token if there is one; False means the action is over the limit."""
        now = clock.now()
        elapsed = max(0.0, (now - self._updated).total_seconds())
        self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate)
        self._updated = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def give_back(self) -> None:
        """Return a token taken for an action that turned out to cost nothing."""
        self._tokens = min(float(self.burst), self._tokens + 1)
