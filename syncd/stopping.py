"""SIGTERM/SIGINT handling shared by `sync`, `run` and `worker`: the first signal stops gently,
the second at once.

A Python signal handler runs in the main thread between two bytecodes, possibly in the
middle of a log write holding the stream's lock: a handler that logs there deadlocks
(structlog's PrintLogger lock) or dies with "reentrant call". So the handler only counts
and hands the work to a fresh thread; the one thing it does itself, on a second signal
with nothing left to say, is a raw ``os.write`` and ``os._exit``.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from typing import Any

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignals:
    """Install with ``with StopSignals(first, second):``; the previous handlers come back on exit.

    ``first(name)`` runs on the first signal and ``second(name)`` on any later one, each in
    its own thread. ``second`` may be an exit code: the process then exits with it at once.
    """

    def __init__(self, first: Callable[[str], None], second: Callable[[str], None] | int,
                 second_message: str = "") -> None:
        self.first = first
        self.second = second
        self.second_message = second_message
        self.count = 0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for number in SIGNALS:
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *_exc: object) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()

    def _handle(self, number: int, _frame: Any) -> None:
        self.count += 1
        name = signal.Signals(number).name
        if self.count == 1:
            _in_thread(self.first, name)
        elif isinstance(self.second, int):
            if self.second_message:
                os.write(2, self.second_message.encode() + b"\n")
            os._exit(self.second)
        else:
            _in_thread(self.second, name)


def _in_thread(action: Callable[[str], None], name: str) -> None:
    threading.Thread(target=action, args=(name,), name=f"syncd-{name.lower()}", daemon=True).start()


def exit_after(seconds: float, code: int = 0, before: Callable[[], None] | None = None) -> threading.Timer:
    """Exit the process with ``code`` after ``seconds`` (the grace for items in flight), running ``before`` first."""

    def leave() -> None:
        try:
            if before is not None:
                before()
        finally:
            os._exit(code)

    timer = threading.Timer(seconds, leave)
    timer.daemon = True
    timer.start()
    return timer
