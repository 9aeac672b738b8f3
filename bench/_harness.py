"""Shared benchmark plumbing: the sandbox and an S3 server as separate processes, fresh state per run."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

ROOT = Path(__file__).resolve().parent.parent
S3_ENV = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1",
          "AWS_EC2_METADATA_DISABLED": "true"}
SANDBOX_SCRIPT = """
import sys
from syncd.sandbox import Sandbox
licenses, file_bytes, bandwidth = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]) or None
with Sandbox(seed=1, licenses=0, port=0, bandwidth=bandwidth) as sandbox:
    sandbox.add_licenses(licenses, media_type="image", is_downloadable=True, file_bytes=file_bytes)
    print(sandbox.url, flush=True)
    sys.stdin.read()   # serve until the benchmark closes our stdin
    print(sum(1 for c in sandbox.calls if c.path.startswith("/v2/")), flush=True)  # API calls served
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Servers:
    """A sandbox process and a moto S3 server process on loopback."""

    def __init__(self, licenses: int, file_bytes: int, bandwidth: int | None = None) -> None:
        self.sandbox = subprocess.Popen([sys.executable, "-c", SANDBOX_SCRIPT, str(licenses), str(file_bytes),
                                         str(bandwidth or 0)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.sandbox.stdout is not None
        self.sandbox_url = self.sandbox.stdout.readline().strip()
        port = free_port()
        moto = Path(sys.executable).with_name("moto_server")
        self.s3 = subprocess.Popen([str(moto), "-H", "127.0.0.1", "-p", str(port)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.s3_url = f"http://127.0.0.1:{port}"
        os.environ.update(S3_ENV)
        for _ in range(100):
            try:
                self.client().list_buckets()
                break
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.1)

    def client(self) -> Any:
        return boto3.client("s3", endpoint_url=self.s3_url, region_name="us-east-1",
                            config=Config(s3={"addressing_style": "path"}, max_pool_connections=32))

    def new_bucket(self) -> str:
        bucket = f"bench-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=bucket)
        return bucket

    def close(self) -> int | None:
        """Stop both servers; returns how many API calls the sandbox served."""
        assert self.sandbox.stdin is not None and self.sandbox.stdout is not None
        self.sandbox.stdin.close()
        served = self.sandbox.stdout.readline().strip()
        for process in (self.sandbox, self.s3):
            process.terminate()
            process.wait(timeout=10)
        return int(served) if served.isdigit() else None


def write_config(directory: Path, sandbox_url: str, destinations: list[dict[str, Any]], concurrency: int) -> Path:
    lines = [f'[state]\nurl = "sqlite:///{directory / "state.db"}"\n',
             f"[sync]\nconcurrency = {concurrency}\n",
             f'[[sources]]\nname = "shutterstock"\nkind = "shutterstock"\nbase_url = "{sandbox_url}"\n'
             'token_env = "BENCH_TOKEN"\nmedia = ["image"]\ndownload_hosts = []\n']
    for destination in destinations:
        lines.append("[[destinations]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in destination.items()))
    path = directory / "syncd.toml"
    path.write_text("\n".join(lines))
    return path


def run_syncd(config: Path, *args: str) -> tuple[float, int, int]:
    """Run `syncd sync`; returns (wall seconds, exit code, peak RSS in KiB of that process alone)."""
    environment = {**os.environ, **S3_ENV, "BENCH_TOKEN": "sandbox-token"}
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "syncd.cli", "--log-format", "json", "--config", str(config),
                                "sync", *args], env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    return elapsed, os.waitstatus_to_exitcode(status), usage.ru_maxrss


def scratch() -> Path:
    return Path(tempfile.mkdtemp(prefix="syncd-bench-"))
