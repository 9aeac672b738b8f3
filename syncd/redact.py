"""Secrets never leave the process: every secret read is remembered and masked in any text out.

Upstream error bodies can echo request headers; exception texts can carry URLs. Rather than
trusting each message, everything that leaves (logs, error messages, reasons stored in the
state) passes through ``redact``.
"""

from __future__ import annotations

import threading
from typing import Any

MASK = "[redacted]"
_SECRETS: set[str] = set()
_LOCK = threading.Lock()


def remember(secret: str) -> str:
    """Register a secret value (and return it) so that ``redact`` masks it from now on."""
    if len(secret) >= 4:  # masking shorter strings would mangle ordinary text
        with _LOCK:
            _SECRETS.add(secret)
    return secret


def redact(text: str) -> str:
    """``text`` with every remembered secret masked."""
    with _LOCK:
        secrets = sorted(_SECRETS, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def redact_event(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: mask secrets in every string value of a log event."""
    return {key: _redact_value(value) for key, value in event.items()}


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_redact_value(v) for v in value)
    if isinstance(value, dict):
        return {k: _redact_value(v) for k, v in value.items()}
    return value
