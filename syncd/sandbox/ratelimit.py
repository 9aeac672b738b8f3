"""A fixed-window request quota reported the way Shutterstock does (``RateLimit-*``, reset in epoch ms)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

# Without a configured limit the sandbox still counts honestly, against a quota so large
# that tests and the demo never meet it.
UNLIMITED = (100_000, 60.0)


@dataclass(frozen=True)
class QuotaState:
    """The quota as one response reports it."""

    limit: int
    remaining: int
    reset_ms: int

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_ms),
        }

    def body(self) -> dict[str, object]:
        """The body of a 429, as in the getting-started docs."""
        return {
            "message": "Too many requests", "limit": self.limit, "remaining": self.remaining, "reset": self.reset_ms,
        }


class RateLimiter:
    """``limit`` requests per ``window`` seconds; the window starts with its first request."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.time) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("rate_limit must be (limit >= 1, window_seconds > 0)")
        self.limit = limit
        self.window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._window_end = 0.0
        self._used = 0

    def spend(self) -> tuple[bool, QuotaState]:
        """Take one request from the quota; False when none is left in this window."""
        with self._lock:
            self._renew()
            if self._used >= self.limit:
                return False, self._state()
            self._used += 1
            return True, self._state()

    def peek(self) -> QuotaState:
        """The quota now, without spending any."""
        with self._lock:
            self._renew()
            return self._state()

    def _renew(self) -> None:
        now = self._clock()
        if now >= self._window_end:
            self._window_end = now + self.window
            self._used = 0

    def _state(self) -> QuotaState:
        return QuotaState(self.limit, self.limit - self._used, int(self._window_end * 1000))
