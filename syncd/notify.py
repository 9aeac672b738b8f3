"""systemd's sd_notify protocol (READY=1, STATUS=…, STOPPING=1), in the dozen lines it takes.

A datagram to the socket named by ``$NOTIFY_SOCKET`` (a path, or ``@name`` for an abstract
socket); without that variable every call is a no-op. The standard library does it, so no
dependency (the PyPI packages for it are unmaintained or need libsystemd to build).
"""

from __future__ import annotations

import os
import socket


def notify(*fields: str) -> bool:
    """Send ``fields`` (e.g. ``"READY=1"``) to systemd; False when not run under systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall("\n".join(fields).encode())
    except OSError:
        return False
    return True
