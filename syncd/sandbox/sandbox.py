"""The Sandbox facade: start a Shutterstock-compatible API on 127.0.0.1, steer it, and inspect what it saw."""

from __future__ import annotations

import signal
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType, TracebackType
from typing import Any

from syncd.sandbox.api import Request, SandboxApi
from syncd.sandbox.bigstock import BigstockApi
from syncd.sandbox.faults import FaultRule, FaultSet
from syncd.sandbox.history import Catalogue
from syncd.sandbox.kinds import kind_named
from syncd.sandbox.ratelimit import UNLIMITED, RateLimiter
from syncd.sandbox.server import Outcome, SandboxHTTPServer
from syncd.sandbox.tokens import UrlSigner

HOST = "127.0.0.1"
SERVED_LIGHTBOX = "Sandbox picks"  # what `syncd sandbox` puts in its Bigstock account to try the source


@dataclass(frozen=True)
class Call:
    """One request the sandbox answered (``status`` 0: the connection was dropped without a response)."""

    method: str
    path: str
    query: dict[str, list[str]]
    status: int
    authorization: str | None
    at: float
    range: str | None = None  # the Range header, if the client asked for part of a file


class Sandbox:
    """A Shutterstock- and Bigstock-compatible API emulator serving real HTTP on 127.0.0.1, deterministic from ``seed``.

    The Bigstock account (``/2/{account_id}/…``, seed 001) is steered through ``sandbox.bigstock``:
    lightboxes, image details, purchases and downloads (see ``syncd.sandbox.bigstock``).
    """

    def __init__(
        self,
        seed: int = 1,
        licenses: int = 40,
        token: str = "sandbox-token",
        media_types: Sequence[str] = ("image",),
        port: int = 0,
        file_bytes: int | None = None,
        download_host: str | None = None,
        url_ttl: float = 8 * 3600,
        arrival_interval: float | None = None,
        rate_limit: tuple[int, float] | None = None,
        bandwidth: int | None = None,
        bigstock_account: str = "123456",
        bigstock_secret: str = "sandbox-secret",
    ) -> None:
        if isinstance(media_types, str):
            media_types = (media_types,)
        kinds = list(dict.fromkeys(kind_named(name) for name in media_types))
        if not kinds:
            raise ValueError("media_types must name at least one media type")
        now = time.time()
        self.seed = seed
        self.token = token
        self.port = port
        self.download_host = download_host
        self.catalogue = Catalogue(seed, kinds, licenses, file_bytes, now)
        if arrival_interval is not None:
            self.catalogue.schedule_arrivals(kinds[0], arrival_interval, now)
        self.faults = FaultSet()
        self.limiter = RateLimiter(*(rate_limit or UNLIMITED))
        self.bandwidth = bandwidth
        self.bigstock = BigstockApi(seed=seed, account_id=bigstock_account, secret=bigstock_secret)
        self.api = SandboxApi(self.catalogue, UrlSigner(seed), self.limiter, token, url_ttl, self._download_base,
                              bigstock=self.bigstock)
        self._calls: list[Call] = []
        self._callbacks: list[Callable[[Call], Any]] = []
        self._lock = threading.Lock()
        self._server: SandboxHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> Sandbox:
        """Serve in a background thread (``port=0`` picks a free port)."""
        if self._server is not None:
            raise RuntimeError("sandbox already started")
        self._server = SandboxHTTPServer((HOST, self.port), self, bandwidth=self.bandwidth)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
            name=f"syncd-sandbox-{self.port}", daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and cut open connections; safe to call twice."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` once started."""
        if self._server is None:
            raise RuntimeError("sandbox not started")
        return f"http://{HOST}:{self.port}"

    def _download_base(self) -> str:
        """Where download links point: the same server, maybe under another host name."""
        return f"http://{self.download_host or HOST}:{self.port}"

    # --- steering -----------------------------------------------------------------------

    def add_licenses(self, n: int, media_type: str = "image", **overrides: Any) -> list[dict[str, Any]]:
        """Add ``n`` licenses newer than all existing ones; returns them newest first.

        License overrides: ``is_downloadable``, ``size``, ``download_time``, ``subscription_id``,
        ``license``, ``metadata``, ``username``. ``media_id`` licenses that media (again, if it
        exists); ``file_bytes`` sets the length of its file in that size. Any other key
        (``description``, ``keywords`` ...) is written into the media's details.
        Unless told otherwise, added licenses are downloadable (editorial ones never are).
        """
        return self.catalogue.add_licenses(kind_named(media_type), n, time.time(), overrides)

    def licenses(self, media_type: str = "image") -> list[dict[str, Any]]:
        """The current license history of a media type, newest first (the dicts the API serves)."""
        self.catalogue.advance(time.time())
        return self.catalogue.history(kind_named(media_type))

    def media(self, media_id: str, media_type: str = "image") -> dict[str, Any] | None:
        """The details the API serves for one media item, or None."""
        return self.catalogue.media(kind_named(media_type), media_id)

    def on_request(self, callback: Callable[[Call], Any]) -> Callable[[Call], Any]:
        """Call ``callback(call)`` for each request once its response is decided, before it is sent.

        Running before the send means whatever the callback changes (say, new licenses
        after page 1) is in place before the client can issue its next request.
        """
        with self._lock:
            self._callbacks.append(callback)
        return callback

    # --- inspection ---------------------------------------------------------------------

    @property
    def calls(self) -> list[Call]:
        """Every request served so far, oldest first (a snapshot)."""
        with self._lock:
            return list(self._calls)

    def count(self, method: str | None, path_prefix: str) -> int:
        """How many requests with this method (None: any) had a path starting with ``path_prefix``."""
        wanted = method.upper() if method else None
        return sum(
            1 for call in self.calls
            if (wanted is None or call.method == wanted) and call.path.startswith(path_prefix)
        )

    @property
    def licensing_calls(self) -> int:
        """Licensing POSTs that created at least one license (money spent)."""
        return self.catalogue.licensing_calls

    # --- request processing (called from server threads) --------------------------------

    def process(self, request: Request) -> Outcome:
        """Decide one request's outcome: arrivals, then any fault, then the API; record it."""
        received = time.time()
        self.catalogue.advance(received)
        outcome = self._outcome(request, self.faults.match(request.method, request.path))
        call = Call(
            method=request.method,
            path=request.path,
            query=request.query,
            status=outcome.status,
            authorization=request.headers.get("Authorization"),
            at=received,
            range=request.headers.get("Range"),
        )
        with self._lock:
            self._calls.append(call)
            callbacks = list(self._callbacks)
        for callback in callbacks:
            try:
                callback(call)
            except Exception:  # a broken test hook must not take the server down
                traceback.print_exc()
        return outcome

    def _outcome(self, request: Request, rule: FaultRule | None) -> Outcome:
        if rule is None:
            return Outcome(self.api.handle(request))
        if rule.kind == "slow":
            time.sleep(rule.delay)
            return Outcome(self.api.handle(request))
        if rule.kind == "drop":
            return Outcome(None, delivery="drop")
        if rule.kind == "lost_response":  # the request takes effect, the answer never arrives
            self.api.handle(request)
            return Outcome(None, delivery="drop")
        if rule.kind == "status":
            return Outcome(self.api.injected_status(request, rule.status or 500))
        if rule.kind == "echo_headers":
            return Outcome(self.api.injected_echo(request, rule.status or 400))
        if rule.kind == "429":
            return Outcome(self.api.injected_429(request, rule.reset_in))
        return Outcome(self.api.handle(request), delivery=rule.kind, fraction=rule.fraction)


def serve(port: int, seed: int, licenses: int, token: str = "sandbox-token") -> None:
    """Serve the sandbox in the foreground until SIGTERM or SIGINT (the ``syncd sandbox`` command)."""
    stopping = threading.Event()
    restore = _on_stop_signals(lambda: stopping.set())
    try:
        with Sandbox(seed=seed, licenses=licenses, token=token, port=port) as sandbox:
            print(f"syncd sandbox listening on {sandbox.url} (token: {token})", flush=True)
            lightbox = sandbox.bigstock.add_lightbox(SERVED_LIGHTBOX, range(5001, 5013))
            print(f"  Bigstock: account_id {sandbox.bigstock.account_id}, secret {sandbox.bigstock.secret}, "
                  f"lightbox {SERVED_LIGHTBOX!r} (id {lightbox}, 12 images)", flush=True)
            # A timed wait keeps the main thread responsive to signals on every platform.
            while not stopping.wait(0.2):
                pass
    except KeyboardInterrupt:
        pass
    finally:
        restore()


def _on_stop_signals(stop: Callable[[], None]) -> Callable[[], None]:
    """Route SIGTERM and SIGINT to ``stop``; returns a function restoring the previous handlers."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None  # signals can only be handled on the main thread

    def handler(signum: int, frame: FrameType | None) -> None:
        stop()

    previous = {number: signal.signal(number, handler) for number in (signal.SIGTERM, signal.SIGINT)}

    def restore() -> None:
        for number, old in previous.items():
            signal.signal(number, old)

    return restore
