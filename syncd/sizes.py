"""Byte counts as people read them."""

from __future__ import annotations


def human_bytes(size: int, exact: bool = False) -> str:
    """``1.8 MiB``; with ``exact``, ``1.8 MiB (1887436 bytes)`` (what a setting must exceed)."""
    if size < 0:
        return "unlimited"
    if size < 1024:
        return f"{size} bytes"
    value, unit = float(size), "bytes"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024:
            break
    return f"{value:.1f} {unit}" + (f" ({size} bytes)" if exact else "")
