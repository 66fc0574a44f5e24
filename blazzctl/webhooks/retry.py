"""What to do after one delivery attempt: done, retry later (when), or give up."""

from __future__ import annotations

import email.utils
import random
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import StrEnum

JITTER = 0.2  # each delay is spread by +/- 20 % so a burst of failures does not retry in lockstep
RETRY_AFTER_CAP = 3600.0  # a Retry-After longer than this (and than the schedule's longest delay) is cut


class Verdict(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    DEAD = "dead"
    GONE = "gone"  # 410: dead, and the endpoint is disabled


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    delay: float = 0.0  # seconds before the next attempt (RETRY only)


def retryable(status_code: int | None) -> bool:
    """Network errors and timeouts (None), 5xx, 408, 429 and 3xx are retried; other 4xx are not."""
    if status_code is None or status_code >= 500 or status_code in (408, 429):
        return True
    return 300 <= status_code < 400  # redirects are not followed: a receiver may be moving


def decide(status_code: int | None, *, attempts: int, schedule: list[float],
           retry_after: str | None = None, rng: random.Random | None = None) -> Decision:
    """The verdict after attempt number ``attempts`` (1 = the first) answered ``status_code``.

    ``schedule[n - 1]`` is the delay after the n-th failed attempt; past its end the
    delivery is dead. ``Retry-After`` (seconds or an HTTP date) is honoured: the next
    attempt is never earlier than it asks, but never later than an hour or the schedule's
    longest delay, whichever is longer (a receiver cannot park a delivery for ever).
    """
    if status_code is not None and 200 <= status_code < 300:
        return Decision(Verdict.DELIVERED)
    if status_code == 410:
        return Decision(Verdict.GONE)
    if not retryable(status_code) or attempts > len(schedule):
        return Decision(Verdict.DEAD)
    rng = rng or random
    delay = float(schedule[attempts - 1]) * rng.uniform(1 - JITTER, 1 + JITTER)
    asked = parse_retry_after(retry_after)
    if asked is not None:
        delay = max(delay, min(asked, max(RETRY_AFTER_CAP, float(max(schedule)))))
    return Decision(Verdict.RETRY, delay)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())
