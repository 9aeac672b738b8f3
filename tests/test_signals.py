"""A stop signal that lands in the middle of a log write must still stop the process gently.

The handler runs between two bytecodes of the main thread, possibly inside the log
stream's lock: a handler that logs there deadlocks. This happened to `syncd worker` under
load; the loop below logs as fast as it can, so most signals land inside a write.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

PROGRAM = """
import threading, structlog
from syncd.logs import setup_logging
from syncd.stopping import StopSignals
setup_logging("json", False)
log = structlog.get_logger("test")
stopped = threading.Event()
def first(name):
    log.info("stopping", signal=name)
    stopped.set()
print("ready", flush=True)
with StopSignals(first, 130):
    while not stopped.is_set():
        log.info("item", outcome="synced", key="k" * 300)
"""


def test_a_signal_during_a_log_write_stops_the_process_with_exit_0() -> None:
    codes = []
    for _ in range(15):
        process = subprocess.Popen([sys.executable, "-c", PROGRAM], stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL)
        assert process.stdout is not None
        assert process.stdout.readline() == b"ready\n"
        time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        try:
            codes.append(process.wait(timeout=10))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            codes.append("hung")
    assert codes == [0] * 15


def test_a_second_signal_exits_at_once_with_130() -> None:
    program = PROGRAM.replace("stopped.set()", "pass")  # the first signal never finishes the work
    process = subprocess.Popen([sys.executable, "-c", program], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None
    process.stdout.readline()
    process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    assert process.poll() is None  # still working: the first signal is gentle
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=10) == 130
