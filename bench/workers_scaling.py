"""Speed-up with more processes on one PostgreSQL state, when the work is bandwidth-bound.

    python bench/workers_scaling.py [--licenses 160] [--kb 512] [--bandwidth-kb 1024]

The sandbox (its own process) throttles every file download to --bandwidth-kb per
connection, as real links do; files go to the S3 server (moto, its own process). For N = 1,
2 and 4 fetching processes (the discovering `syncd sync` plus N-1 `syncd worker`s, each
with concurrency 4) it times the pass and counts the API calls the sandbox served per asset.
Speed-up = time with 1 process / time with N, measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import S3_ENV, Servers, scratch, write_config  # noqa: E402

PG_ADMIN = os.environ.get("SYNCD_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def one_run(processes: int, args: argparse.Namespace) -> tuple[float, float]:
    servers = Servers(args.licenses, args.kb * 1024, bandwidth=args.bandwidth_kb * 1024)
    name = f"syncd_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    directory = scratch()
    config = write_config(directory, servers.sandbox_url, [
        {"name": "archive", "kind": "s3", "bucket": servers.new_bucket(), "endpoint_url": servers.s3_url}], 4)
    config.write_text(config.read_text().replace(f'url = "sqlite:///{directory / "state.db"}"', f'url = "{url}"'))
    environment = {**os.environ, **S3_ENV, "BENCH_TOKEN": "sandbox-token"}
    command = [sys.executable, "-m", "syncd.cli", "--log-format", "json", "--config", str(config)]
    subprocess.run(command + ["status"], env=environment, check=True, capture_output=True)  # migrate first
    workers = [subprocess.Popen(command + ["worker"], env=environment, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL) for _ in range(processes - 1)]
    try:
        started = time.perf_counter()
        subprocess.run(command + ["sync"], env=environment, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        seconds = time.perf_counter() - started
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            worker.wait(timeout=60)
        served = servers.close() or 0
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    return seconds, served / args.licenses


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--licenses", type=int, default=160)
    parser.add_argument("--kb", type=int, default=512)
    parser.add_argument("--bandwidth-kb", type=int, default=1024)
    args = parser.parse_args()
    results = {n: one_run(n, args) for n in (1, 2, 4)}
    base = results[1][0]
    for n, (seconds, calls) in results.items():
        print(f"{n} process(es): {seconds:.2f}s, speed-up {base / seconds:.2f} (ideal {n}), "
              f"{calls:.3f} API calls per asset", flush=True)


if __name__ == "__main__":
    main()
