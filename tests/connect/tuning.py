"""Business Central connector tuning for the connect tests: short retry delays and small pages."""

from __future__ import annotations

from interlink.connectors.dynamics_bc.client import Tuning
from interlink.connectors.http import RetryPolicy

FAST_TUNING = Tuning(
    retry=RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05, max_total_wait=2.0),
    page_size=20,
    request_timeout=5.0,
)
