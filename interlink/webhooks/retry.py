"""When a failed delivery is tried again: a growing schedule with jitter, and ``Retry-After``."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

# Waits after the 1st, 2nd, ... failed attempt. Eight attempts span about 31.5
# hours, so a receiver that is down for a day still gets every event.
DEFAULT_DELAYS = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=14),
)


@dataclass(frozen=True)
class RetrySchedule:
    """The retry schedule of one delivery."""

    delays: tuple[timedelta, ...] = DEFAULT_DELAYS
    # Each wait is scaled by a random factor in [1 - jitter, 1 + jitter], so
    # the retries of many deliveries that failed together spread out.
    jitter: float = 0.1
    # A receiver's Retry-After is honoured up to this wait.
    max_retry_after: timedelta = timedelta(hours=24)

    @property
    def max_attempts(self) -> int:
        return len(self.delays) + 1

    def next_attempt_at(
        self,
        attempt: int,
        now: datetime,
        *,
        retry_after: float | None = None,
        rng: random.Random | None = None,
    ) -> datetime | None:
        """Return when to try again after failed attempt number ``attempt`` (1-based).

        Returns ``None`` when that was the last attempt. A ``Retry-After`` of
        the receiver (in seconds) postpones the retry, never advances it.
        """
        if attempt > len(self.delays):
            return None
        factor = (rng or random).uniform(1 - self.jitter, 1 + self.jitter)
        wait = self.delays[attempt - 1].total_seconds() * factor
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_retry_after.total_seconds()))
        return now + timedelta(seconds=wait)
