"""Idle backoff for polling loops: poll often while there is work, rarely when there is none.

The daemon's idle load (queries per second with nothing to do) is a benchmark target; every
loop that polls a table waits ``delay()`` between polls and reports what it found.
"""

from __future__ import annotations


class IdleBackoff:
    def __init__(self, minimum: float, maximum: float, factor: float = 1.5) -> None:
        self.minimum, self.maximum, self.factor = minimum, max(minimum, maximum), factor
        self.current = minimum

    def found(self, busy: bool) -> float:
        """The delay before the next poll, after a poll that found work (busy) or nothing."""
        self.current = self.minimum if busy else min(self.maximum, self.current * self.factor)
        return self.current
