"""Prometheus metrics and the health verdict, served by `syncd run` and written by one-shot commands.

Counters are fed by the engine's reporter callbacks; API calls are read from the sources after
each pass; queue gauges from the state. ``/healthz`` answers from the outcome of the last pass.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    write_to_textfile,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from syncd.engine import PassResult, Reporter


class Metrics:
    """Every metric syncd exposes, in one registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.items = Counter("syncd_items", "Items processed, by outcome", ["source", "media_type", "outcome"], registry=r)
        self.stored = Counter("syncd_assets_stored", "Assets stored, by destination", ["destination", "source", "media_type"], registry=r)
        self.bytes = Counter("syncd_bytes", "Bytes downloaded and stored", ["source", "media_type"], registry=r)
        self.api_calls = Counter("syncd_api_calls", "Upstream API calls, by endpoint and status", ["source", "endpoint", "status"], registry=r)
        self.rate_limited = Counter("syncd_rate_limited", "429 answers from the upstream", ["source"], registry=r)
        self.quota_reset = Gauge("syncd_quota_reset_seconds", "Seconds until the upstream quota resets (0: not limited)", registry=r)
        self.passes = Counter("syncd_passes", "Passes, by exit code", ["command", "exit_code"], registry=r)
        self.pass_duration = Histogram("syncd_pass_duration_seconds", "Duration of a pass", ["command"], registry=r,
                                       buckets=(1, 5, 15, 60, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600, float("inf")))
        self.last_success = Gauge("syncd_last_success_timestamp_seconds", "When the last pass succeeded (unix time)", registry=r)
        self.state_items = Gauge("syncd_state_items", "Items in the state database, by state", ["state"], registry=r)

    def reporter(self) -> "MetricsReporter":
        """Engine callbacks that feed these metrics."""
        return MetricsReporter(self)

    def record_pass(self, command: str, result: PassResult, seconds: float, sources: list[Any], gate: Any,
                    state_counts: dict[str, int]) -> None:
        """After a pass: its duration and outcome, API calls, the queue."""
        for state, count in state_counts.items():
            self.state_items.labels(state).set(count)
        for source in sources:
            for (endpoint, status), count in source.api_calls().items():
                self.api_calls.labels(source.name, endpoint, str(status)).inc(count)
                if status == 429:
                    self.rate_limited.labels(source.name).inc(count)
        self.quota_reset.set(max(0.0, gate.paused_until - time.time()))
        self.pass_duration.labels(command).observe(seconds)
        if result.exit_code in (0, 1) and result.stop is None:
            self.last_success.set(time.time())
        self.passes.labels(command, str(result.exit_code)).inc()  # last: a scraper seeing it sees the rest

    def exposition(self) -> bytes:
        """The Prometheus text format."""
        return generate_latest(self.registry)

    def write_textfile(self, path: str) -> None:
        """For node_exporter's textfile collector (atomic: written aside, then renamed)."""
        write_to_textfile(path, self.registry)


class MetricsReporter(Reporter):
    """Counts items as the engine finishes them."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def item_done(self, outcome: str, size: int, *, source: str = "", media_type: str = "",
                  destinations: tuple[str, ...] = (), items: int = 1) -> None:
        self.metrics.items.labels(source, media_type, outcome).inc(items)
        if outcome == "synced":
            self.metrics.bytes.labels(source, media_type).inc(size)
            for destination in destinations:
                self.metrics.stored.labels(destination, source, media_type).inc()


class Health:
    """The daemon's health: 200 while the last pass succeeded within the expected schedule."""

    def __init__(self, period: float) -> None:
        self.period = period
        self._lock = threading.Lock()
        self.started = time.time()
        self.running_since: float | None = None
        self.last_finished: float | None = None
        self.last_success: float | None = None
        self.last_problem: str | None = None

    def pass_started(self) -> None:
        with self._lock:
            self.running_since = time.time()

    def pass_finished(self, result: PassResult | None, problem: str | None = None) -> None:
        with self._lock:
            now = time.time()
            self.running_since = None
            self.last_finished = now
            if problem is None and result is not None:
                if result.stop is not None and result.exit_code in (2, 3):
                    problem = f"last pass stopped: {result.stop}"
                elif result.stop is not None and result.exit_code == 5:
                    problem = f"last pass stopped by the upstream quota: {result.stop}"
            self.last_problem = problem
            if problem is None:
                self.last_success = now

    def verdict(self) -> tuple[bool, str]:
        """(healthy, reason)."""
        with self._lock:
            now = time.time()
            if self.last_problem is not None:
                return False, self.last_problem
            allowed = 2 * self.period + 60
            if self.last_success is None:
                if self.running_since is not None:
                    return True, "first pass in progress"
                if now - self.started <= allowed:
                    return True, "starting"
                return False, "no pass has completed"
            if now - self.last_success > allowed and self.running_since is None:
                return False, f"last successful pass was {now - self.last_success:.0f}s ago (expected every {self.period:.0f}s)"
            return True, f"last successful pass {now - self.last_success:.0f}s ago"


def serve_metrics(listen: str, metrics: Metrics, health: Health) -> ThreadingHTTPServer:
    """Serve /metrics and /healthz on ``host:port`` in a background thread."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path.split("?")[0] == "/metrics":
                self._reply(200, metrics.exposition(), CONTENT_TYPE_LATEST)
            elif self.path.split("?")[0] == "/healthz":
                healthy, reason = health.verdict()
                self._reply(200 if healthy else 503, (("ok: " if healthy else "unhealthy: ") + reason + "\n").encode(),
                            "text/plain; charset=utf-8")
            else:
                self._reply(404, b"not found: try /metrics or /healthz\n", "text/plain")

        def _reply(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:
            pass  # scrapes every 15 s would drown the logs

    server = ThreadingHTTPServer((host, int(port)), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="syncd-metrics", daemon=True).start()
    return server
