"""HTTP to upstream APIs: retries with jittered backoff, and one shared view of the rate limit.

Retries use stamina (exponential backoff with jitter and a cap, logged through structlog),
so this module holds only the policy: what is transient, how a 429 is waited out, and when a
wait is too long and stops the pass (exit 5).
"""

from __future__ import annotations

import ipaddress
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import stamina
import structlog

from syncd import USER_AGENT
from syncd.errors import OutcomeUnknown, QuotaExhausted, TransientError

log = structlog.get_logger("syncd.http")

RETRY_ATTEMPTS = 5
RETRY_WAIT_INITIAL = 0.5
RETRY_WAIT_MAX = 30.0
MAX_429_WAITS = 20
TIMEOUT = httpx.Timeout(connect=10.0, read=60.0, write=60.0, pool=60.0)


class _Retryable(Exception):
    """A response worth trying again (5xx)."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


def is_loopback(host: str | None) -> bool:
    """True for localhost and loopback addresses: the only hosts plain HTTP may reach."""
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def reset_epoch(headers: httpx.Headers, body: Any = None) -> float | None:
    """When the quota renews (epoch seconds), from the 429 body's ``reset`` or ``RateLimit-Reset`` (ms)."""
    candidates = []
    if isinstance(body, dict) and body.get("reset") is not None:
        candidates.append(body["reset"])
    if headers.get("RateLimit-Reset"):
        candidates.append(headers["RateLimit-Reset"])
    for raw in candidates:
        try:
            value = float(raw)
        except (TypeError, ValueError):
            continue
        # Shutterstock sends epoch milliseconds; tolerate seconds-since-epoch and delta-seconds too.
        if value > 1e11:
            return value / 1000.0
        if value > 1e9:
            return value
        return time.time() + value
    return None


class RateGate:
    """The application's rate limit as every thread of this process sees it.

    A 429 or an exhausted ``RateLimit-Remaining`` pauses all requests until the reset the API
    named; a reset further away than ``max_wait`` raises ``QuotaExhausted`` instead.
    """

    def __init__(self, max_wait: float, sleep: Callable[[float], None] = time.sleep) -> None:
        self.max_wait = max_wait
        self._sleep = sleep
        self._lock = threading.Lock()
        self._paused_until = 0.0
        self.waited = 0.0

    def wait_turn(self) -> None:
        """Block while the quota is known to be exhausted."""
        while True:
            with self._lock:
                delay = self._paused_until - time.time()
            if delay <= 0:
                return
            if delay > self.max_wait:
                raise QuotaExhausted(self._quota_message(delay))
            self.waited += delay
            self._sleep(min(delay, 5.0))

    def observe(self, response: httpx.Response) -> None:
        """Learn from a response's ``RateLimit-*`` headers; throttle before a 429 happens."""
        remaining = response.headers.get("RateLimit-Remaining")
        if remaining is None:
            return
        try:
            exhausted = int(float(remaining)) <= 0
        except ValueError:
            return
        if exhausted:
            self.pause(reset_epoch(response.headers) or time.time() + 1.0)

    def pause(self, until: float) -> None:
        """Pause every request until ``until`` (epoch seconds)."""
        delay = until - time.time()
        if delay > self.max_wait:
            raise QuotaExhausted(self._quota_message(delay))
        with self._lock:
            self._paused_until = max(self._paused_until, until)

    @property
    def paused_until(self) -> float:
        """Epoch seconds until which requests wait (in the past when not limited)."""
        with self._lock:
            return self._paused_until

    def _quota_message(self, delay: float) -> str:
        return (
            f"the upstream's rate limit resets in {delay:.0f}s, longer than [sync] max_wait "
            f"({self.max_wait:.0f}s); stopping this pass, state is saved and the next run continues"
        )


class SharedRateGate(RateGate):
    """A rate gate whose pauses are shared through the state database with every other process.

    The limit belongs to the application, not to a process: a 429 or an exhausted quota that
    one worker sees pauses all of them. The state database is what every worker already
    shares, so no other service is needed; it is read at most five times a second per process
    (a pause one process learns reaches the others within 0.2 s, before many requests are wasted).
    """

    REFRESH = 0.2

    def __init__(self, max_wait: float, store: Any, key: str = "upstream", sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(max_wait, sleep)
        self.store = store
        self.key = key
        self._checked = 0.0

    def wait_turn(self) -> None:
        now = time.monotonic()
        if now - self._checked >= self.REFRESH:
            self._checked = now
            shared = self.store.shared_pause(self.key)
            if shared > time.time():
                super().pause(shared)
        super().wait_turn()

    def pause(self, until: float) -> None:
        super().pause(until)
        self.store.share_pause(self.key, until)


class ApiClient:
    """An authenticated JSON client for one API host: User-Agent, bearer token, retries, rate limit."""

    def __init__(self, base_url: str, headers: dict[str, str], gate: RateGate, transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.host = urlsplit(self.base_url).hostname or ""
        self.gate = gate
        self.calls: Counter[tuple[str, int]] = Counter()
        self._client = httpx.Client(
            base_url=self.base_url,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json", **headers},
            timeout=TIMEOUT,
            follow_redirects=False,
            transport=transport,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
        )

    def request(self, method: str, path: str, *, retry: bool = True, **kwargs: Any) -> httpx.Response:
        """Send a request; 5xx and network errors are retried, 429 is waited out. Returns any other response.

        ``retry=False`` is for calls that spend money: a 5xx or a lost answer is never repeated
        but raised as ``OutcomeUnknown`` (a 429 was not processed, so it is still waited out).
        """
        for _ in range(MAX_429_WAITS):
            response = (self._send_with_retries(method, path, **kwargs) if retry
                        else self._send_once(method, path, **kwargs))
            if response.status_code != 429:
                return response
            self.gate.pause(reset_epoch(response.headers, _json_or_none(response)) or time.time() + 1.0)
            log.warning("rate_limited", path=path, paused_for=round(self.gate.paused_until - time.time(), 2))
        raise QuotaExhausted(f"the upstream kept answering 429 to {path} after {MAX_429_WAITS} waits")

    def _send_with_retries(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            for attempt in stamina.retry_context(
                on=(httpx.TransportError, _Retryable),
                attempts=RETRY_ATTEMPTS,
                wait_initial=RETRY_WAIT_INITIAL,
                wait_max=RETRY_WAIT_MAX,
            ):
                with attempt:
                    self.gate.wait_turn()
                    response = self._client.request(method, path, **kwargs)
                    self.calls[(path_label(path), response.status_code)] += 1
                    self.gate.observe(response)
                    if response.status_code >= 500:
                        raise _Retryable(response)
                    return response
        except _Retryable as error:
            raise TransientError(
                f"{method} {path}: the API answered HTTP {error.response.status_code} "
                f"{RETRY_ATTEMPTS} times in a row"
            ) from None
        except httpx.TransportError as error:
            raise TransientError(f"{method} {path}: cannot reach {self.host}: {error!r}") from None
        raise AssertionError("unreachable")

    def _send_once(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        self.gate.wait_turn()
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.TransportError as error:
            raise OutcomeUnknown(f"{method} {path}: no answer ({error!r}); the call may have taken effect") from None
        self.calls[(path_label(path), response.status_code)] += 1
        self.gate.observe(response)
        if response.status_code >= 500:
            raise OutcomeUnknown(f"{method} {path}: HTTP {response.status_code}; the call may have taken effect")
        return response

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()


def path_label(path: str) -> str:
    """A low-cardinality label for an API path (ids replaced), for call counting."""
    parts = [("{id}" if _ID_SEGMENT.match(part) else part) for part in path.split("?")[0].split("/")]
    return "/".join(parts)


_ID_SEGMENT = re.compile(r"^[A-Za-z]{0,2}\d{3,}[A-Za-z0-9]*$")  # 1079756147, i4117504982, 9763363ao


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
