"""The clock every deadline is measured on."""

from __future__ import annotations

import time


def now_ms() -> int:
    """Wall-clock milliseconds: expiry deadlines are shared across hosts, so no monotonic clock."""
    return int(time.time() * 1000)
