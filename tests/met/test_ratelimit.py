"""The per-host adaptive rate limiter, on a virtual clock and on the real one."""

from __future__ import annotations

import asyncio
import time

import numpy as np

from methbuild.met.ratelimit import AdaptiveRateLimiter, HostLimiters, parse_retry_after


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def _max_in_window(times, window):
    times = np.sort(np.asarray(times))
    right = np.searchsorted(times, times + window, side="left")
    return int((right - np.arange(len(times))).max())


def test_slots_never_exceed_the_rate_in_any_window():
    clock = Clock()
    lim = AdaptiveRateLimiter(20, clock=clock)
    slots = [lim.reserve() for _ in range(1000)]  # 1000 tasks all asking at once
    assert _max_in_window(slots, 10.0) <= 20 * 10 + 1
    assert abs((slots[-1] - slots[0]) - 999 / 20) < 1e-6


def test_backoff_retry_after_and_recovery():
    clock = Clock()
    lim = AdaptiveRateLimiter(16, clock=clock, cooldown=1.0, recover=0.05)
    lim.on_throttle(retry_after=3.0)
    assert lim.rate == 8 and lim.reserve() >= 3.0  # paused, then slower
    lim.on_throttle()
    assert lim.rate == 8  # a burst of throttles within the cooldown counts once
    clock.t = 5.0
    lim.on_throttle()
    assert lim.rate == 4
    for _ in range(100):
        lim.on_success()
    assert lim.rate == 16  # back to, never above, the configured rate
    for _ in range(50):
        clock.t += 2
        lim.on_throttle()
    assert lim.rate == lim.min_rate > 0


def test_real_clock_rate_is_held():
    lim = AdaptiveRateLimiter(50)
    stamps = []

    async def task():
        for _ in range(10):
            await lim.acquire()
            stamps.append(time.monotonic())

    async def main():
        await asyncio.gather(*(task() for _ in range(10)))

    t0 = time.monotonic()
    asyncio.run(main())
    elapsed = time.monotonic() - t0
    assert 1.9 < elapsed < 5.0  # 100 requests at 50/s (never faster; slower only on a loaded machine)
    assert _max_in_window(stamps, 1.0) <= 52


def test_hosts_are_independent_and_retry_after_parsing():
    hosts = HostLimiters(10, rates={"a": 2})
    assert hosts["a"].rate == 2 and hosts["b"].rate == 10 and hosts["a"] is hosts["a"]
    assert parse_retry_after("7") == 7 and parse_retry_after("0.5") == 0.5 and parse_retry_after("x") is None
    assert parse_retry_after("99999") == 300 and parse_retry_after(None) is None
    assert 0 <= parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0
