"""Token buckets against a reference model of the same rule."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from core import clock
from fleet.rate_limit import TokenBucket
from tests.support.servers import Clock


def test_a_burst_then_the_steady_rate(frozen_clock: Clock) -> None:
    bucket = TokenBucket(rate=1, burst=4)
    assert [bucket.take() for _ in range(5)] == [True, True, True, True, False]
    frozen_clock.advance(seconds=0.5)
    assert bucket.take() is False
    frozen_clock.advance(seconds=0.5)
    assert [bucket.take(), bucket.take()] == [True, False]
    frozen_clock.advance(seconds=60)
    assert sum(bucket.take() for _ in range(10)) == 4


def test_a_token_given_back_can_be_taken_again(frozen_clock: Clock) -> None:
    bucket = TokenBucket(rate=1, burst=2)
    assert [bucket.take(), bucket.take(), bucket.take()] == [True, True, False]
    bucket.give_back()
    assert [bucket.take(), bucket.take()] == [True, False]
    bucket.give_back()
    bucket.give_back()
    bucket.give_back()  # never more than the burst
    assert [bucket.take(), bucket.take(), bucket.take()] == [True, True, False]


@settings(max_examples=200, deadline=None)
@given(
    rate=st.sampled_from([0.5, 1.0, 4.0]),
    burst=st.integers(min_value=1, max_value=6),
    gaps=st.lists(st.sampled_from([0, 0, 0.25, 0.5, 1, 3]), max_size=40),
)
def test_matches_a_reference_model(rate: float, burst: int, gaps: list[float]) -> None:
    fake = Clock(clock.now())
    clock.set_source(fake)
    try:
        bucket = TokenBucket(rate=rate, burst=burst)
        tokens = float(burst)
        for gap in gaps:
            fake.advance(seconds=gap)
            tokens = min(burst, tokens + gap * rate)
            expected = tokens >= 1
            if expected:
                tokens -= 1
            assert bucket.take() is expected
    finally:
        clock.set_source(None)
