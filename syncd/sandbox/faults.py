"""Injected failures: rules that make matching requests fail the way real networks and APIs do."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

FAULT_KINDS = frozenset({"status", "429", "drop", "lost_response", "echo_headers", "truncate", "truncate_nolength", "slow"})


@dataclass
class FaultRule:
    """Affect ``times`` requests whose path matches ``path`` (``re.search``), after letting ``after`` pass.

    Kinds: ``status`` (respond ``status``, default 500), ``429`` (rate-limited, renewing in
    ``reset_in`` seconds), ``drop`` (close without a response), ``truncate`` (full
    Content-Length, ``fraction`` of the body), ``truncate_nolength`` (no Content-Length,
    ``fraction`` of the body, then close), ``slow`` (wait ``delay`` seconds, then answer
    normally). ``times=-1`` never runs out.
    """

    path: str
    method: str | None = None
    # A default keeps the brief's field order usable positionally; "status" is the plainest fault.
    kind: str = "status"
    times: int = 1
    after: int = 0
    status: int | None = None
    reset_in: float = 1.0
    fraction: float = 0.5
    delay: float = 0.0
    seen: int = field(default=0, init=False, compare=False)
    """Matching requests so far, including those let through by ``after``."""
    fired: int = field(default=0, init=False, compare=False)
    """Requests this rule has affected."""

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {', '.join(sorted(FAULT_KINDS))}")
        if not 0.0 <= self.fraction <= 1.0:
            raise ValueError("fraction must be between 0 and 1")
        self._pattern = re.compile(self.path)

    @property
    def spent(self) -> bool:
        return self.times != -1 and self.fired >= self.times

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self._pattern.search(path) is not None


class FaultSet:
    """The sandbox's active fault rules; the first live rule that matches a request fires."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()

    def add(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    @property
    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def match(self, method: str, path: str) -> FaultRule | None:
        """The rule that fires for this request, counting it against every rule it reaches."""
        with self._lock:
            for rule in self._rules:
                if rule.spent or not rule.matches(method, path):
                    continue
                rule.seen += 1
                if rule.seen <= rule.after:
                    continue
                rule.fired += 1
                return rule
        return None
