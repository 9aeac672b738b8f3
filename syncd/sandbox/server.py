"""HTTP/1.1 plumbing: a threading keep-alive server that reads Requests and writes Responses.

What to answer is decided elsewhere (a ``Processor``); this module only knows how to
deliver it: in full, cut short after the headers promised more, cut short with no length
at all, or not at all (a dropped connection).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import traceback
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol
from urllib.parse import parse_qs, urlsplit

from syncd.sandbox.api import Request, Response

# How long an idle keep-alive connection may hold a server thread.
IDLE_TIMEOUT = 60.0


@dataclass
class Outcome:
    """A response and how to deliver it: ``full``, ``truncate``, ``truncate_nolength`` or ``drop``."""

    response: Response | None
    delivery: str = "full"
    fraction: float = 1.0

    @property
    def status(self) -> int:
        """The status the client sees; 0 when the connection is dropped without one."""
        return 0 if self.response is None or self.delivery == "drop" else self.response.status


class Processor(Protocol):
    """Decides the outcome of one request (the Sandbox implements this)."""

    def process(self, request: Request) -> Outcome: ...


class SandboxHTTPServer(ThreadingHTTPServer):
    """Threading server that can cut its keep-alive connections on stop."""

    daemon_threads = True
    # Idle keep-alive threads would make server_close() wait; stop() closes their sockets instead.
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], processor: Processor, bandwidth: int | None = None) -> None:
        self.processor = processor
        self.bandwidth = bandwidth  # bytes per second per file download (None: as fast as it goes)
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, SandboxRequestHandler)

    def process_request(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: socket.socket) -> None:  # type: ignore[override]
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Shut every open connection so a stopped sandbox answers nothing, even on pooled sockets."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by the peer
                connection.shutdown(socket.SHUT_RDWR)


class SandboxRequestHandler(BaseHTTPRequestHandler):
    """Reads one request, asks the processor, delivers the outcome; keeps the connection alive."""

    protocol_version = "HTTP/1.1"
    server_version = "syncd-sandbox/1"
    timeout = IDLE_TIMEOUT
    server: SandboxHTTPServer

    def do_GET(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: object) -> None:
        """Silent: every request is recorded in ``Sandbox.calls`` instead."""

    def _serve(self) -> None:
        request = self._read_request()
        if request is None:
            return
        try:
            outcome = self.server.processor.process(request)
        except Exception:  # a sandbox bug must still answer, or the client hangs on keep-alive
            traceback.print_exc()
            outcome = Outcome(Response.json(500, {"message": "sandbox internal error"}))
        try:
            self._deliver(outcome, head_only=self.command == "HEAD")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away mid-response

    def _read_request(self) -> Request | None:
        url = urlsplit(self.path)
        try:
            body = self._read_body()
        except ValueError:
            self.send_error(400, "Malformed request body")
            return None
        return Request(
            method=self.command,
            path=url.path,
            query=parse_qs(url.query, keep_blank_values=True),
            headers=self.headers,  # type: ignore[arg-type]  # email.message.Message: case-insensitive get()
            body=body,
        )

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int(self.rfile.readline(65537).split(b";")[0].strip(), 16)
            if size == 0:
                while self.rfile.readline(65537).strip():
                    pass  # trailers
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline()

    def _deliver(self, outcome: Outcome, head_only: bool) -> None:
        response = outcome.response
        if response is None or outcome.delivery == "drop":
            self.close_connection = True
            return
        length = response.length or 0
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if outcome.delivery == "truncate_nolength":
            # No length and no chunking: the body ends where the connection does.
            self.send_header("Connection", "close")
        else:
            self.send_header("Content-Length", str(length))
        self.end_headers()
        if head_only:
            return
        budget = length if outcome.delivery == "full" else int(length * outcome.fraction)
        self._write_body(response, budget)
        if outcome.delivery != "full":
            self.wfile.flush()
            self.close_connection = True

    def _write_body(self, response: Response, budget: int) -> None:
        """Write at most ``budget`` bytes of the body, piece by piece (throttled for file streams)."""
        bandwidth = getattr(self.server, "bandwidth", None) if response.stream is not None else None
        started, sent = time.monotonic(), 0
        for piece in response.chunks():
            if budget <= 0:
                break
            piece = piece[:budget]
            self.wfile.write(piece)
            budget -= len(piece)
            sent += len(piece)
            if bandwidth:
                ahead = sent / bandwidth - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)  # a real link's per-connection bandwidth
