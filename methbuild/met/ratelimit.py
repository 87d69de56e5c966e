"""Per-host adaptive rate limiting for polite crawling.

Each host gets a schedule of request slots ``1/rate`` apart: :meth:`acquire` reserves the next
slot and sleeps until it, so however many tasks wait, the host never sees more than ``rate``
requests per second (plus one) over any window. The rate adapts (AIMD):
multiplicative back-off on throttling answers (403, 429, 5xx, an HTML page where JSON was
expected), ``Retry-After`` pauses the host, and each success raises the rate slowly again
towards the configured maximum.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable


class AdaptiveRateLimiter:
    """Request slots for one host at an adaptive rate (requests per second)."""

    def __init__(self, rate: float, *, min_rate: float | None = None, backoff: float = 0.5,
                 recover: float = 0.02, cooldown: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not math.isfinite(rate) or rate <= 0:  # NaN passes `rate <= 0` and would switch politeness off
            raise ValueError(f"rate must be a finite number > 0, not {rate!r}")
        self.max_rate = float(rate)
        self.rate = float(rate)
        self.min_rate = min(self.max_rate, min_rate if min_rate is not None else max(0.05, rate / 64))
        self.backoff, self.recover, self.cooldown = backoff, recover, cooldown
        self._clock = clock
        self._next = 0.0  # the earliest free slot
        self._paused_until = 0.0
        self._last_backoff = -1e18
        self.throttled = 0  # how many throttling answers this host gave

    def reserve(self) -> float:
        """Reserve the next slot; return its time on the limiter's clock."""
        now = self._clock()
        slot = max(now, self._next, self._paused_until)
        self._next = slot + 1.0 / self.rate
        return slot

    async def acquire(self) -> None:
        """Wait for this host's next request slot."""
        delay = self.reserve() - self._clock()
        if delay > 0:
            await asyncio.sleep(delay)

    def on_success(self) -> None:
        """A normal answer: creep back towards the configured rate (additive increase)."""
        if self.rate < self.max_rate:
            self.rate = min(self.max_rate, self.rate + self.recover * self.max_rate)

    def on_throttle(self, retry_after: float | None = None) -> None:
        """A throttling answer: halve the rate (once per cooldown) and honour ``Retry-After``."""
        self.throttled += 1
        now = self._clock()
        if now - self._last_backoff >= self.cooldown:
            self._last_backoff = now
            self.rate = max(self.min_rate, self.rate * self.backoff)
        pause = retry_after if retry_after is not None else 0.0
        if pause > 0:
            self._paused_until = max(self._paused_until, now + pause)
            # slots reserved before the answer must not fire inside the pause either
            self._next = max(self._next, self._paused_until)


def parse_retry_after(value: str | None, *, cap: float = 300.0) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), capped."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, min(cap, float(value)))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, min(cap, when.timestamp() - time.time()))


class HostLimiters:
    """One :class:`AdaptiveRateLimiter` per host, created on first use at the host's rate."""

    def __init__(self, default_rate: float, rates: dict[str, float] | None = None, **options) -> None:
        AdaptiveRateLimiter(default_rate)  # a non-finite or non-positive rate fails here, not at the first request
        self.default_rate = default_rate
        self.rates = dict(rates or {})
        self.options = options
        self._by_host: dict[str, AdaptiveRateLimiter] = {}

    def __getitem__(self, host: str) -> AdaptiveRateLimiter:
        lim = self._by_host.get(host)
        if lim is None:
            lim = self._by_host[host] = AdaptiveRateLimiter(self.rates.get(host, self.default_rate), **self.options)
        return lim

    def items(self):
        return self._by_host.items()
