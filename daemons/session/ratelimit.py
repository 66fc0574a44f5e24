"""Per-account send pacing: a token bucket plus random jitter (the original defined one and never used it)."""

from __future__ import annotations

import random
import time


class TokenBucket:
    """``rate_per_minute`` tokens a minute, at most ``burst`` saved up; ``jitter`` adds random spacing."""

    def __init__(self, rate_per_minute: float, burst: int, jitter: float = 0.0, *, clock=time.monotonic) -> None:
        self.rate = rate_per_minute / 60.0
        self.burst = max(1, burst)
        self.jitter = jitter
        self.clock = clock
        self.tokens = float(self.burst)
        self.updated = clock()
        self.not_before = 0.0

    def _refill(self) -> None:
        now = self.clock()
        if self.rate > 0:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def wait_time(self) -> float:
        """Seconds until a send may start (0 when it may start now)."""
        if self.rate <= 0:
            return 0.0
        self._refill()
        now = self.clock()
        needed = 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate
        return max(needed, self.not_before - now, 0.0)

    def take(self) -> None:
        """Spend a token for a send starting now."""
        if self.rate <= 0:
            return
        self._refill()
        self.tokens -= 1
        if self.jitter:
            self.not_before = self.clock() + random.uniform(0, self.jitter)
