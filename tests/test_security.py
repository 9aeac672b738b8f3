"""Secrets stay secret, downloads stay on allowed hosts, files stay private."""

from __future__ import annotations

import stat
from pathlib import Path

from syncd.sandbox import FaultRule, Sandbox
from tests.fixtures.s3 import s3_client
from tests.helpers import library_files, run_syncd, sandbox_config

TOKEN = "tok-5ECRET-d41d8cd98f00b204e9800998ecf8427e"
REFUSED = "refused-5ECRET-0cc175b9c0f1b6a831c399e269772661"


def _every_byte(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def test_the_token_appears_nowhere_even_with_faults_and_echoing_upstreams(tmp_path: Path, s3_bucket) -> None:  # type: ignore[no-untyped-def]
    endpoint, bucket = s3_bucket
    with Sandbox(seed=41, licenses=25, token=TOKEN) as sandbox:
        sandbox.faults.add(FaultRule(path=r"^/v2/images$", kind="echo_headers", status=500, times=2))
        sandbox.faults.add(FaultRule(path=r"/downloads$", kind="echo_headers", status=400, times=2))
        sandbox.faults.add(FaultRule(path=r"^/v2/images/licenses$", kind="429", reset_in=0.5, times=1))
        sandbox.faults.add(FaultRule(path=r"^/download/", kind="truncate", times=2))
        sandbox.faults.add(FaultRule(path=r"^/download/", kind="status", status=503, after=5, times=2))
        destinations = [{"name": "library", "kind": "filesystem", "path": str(tmp_path / "library")},
                        {"name": "archive", "kind": "s3", "bucket": bucket, "endpoint_url": endpoint}]
        config = sandbox_config(tmp_path, sandbox.url, destinations=destinations, sync={"max_attempts": 1})
        outputs = []
        for args in (["-v", "sync"], ["sync"], ["status"], ["status", "--json"], ["check"]):
            result = run_syncd(*args, config=config, token=TOKEN)
            outputs.append(result.stdout + result.stderr)
        console = run_syncd("--log-format", "console", "-v", "sync", config=config, token=TOKEN)
        outputs.append(console.stdout + console.stderr)
        refused = run_syncd("-v", "sync", config=config, token=REFUSED)
        assert refused.code == 3
        outputs.append(refused.stdout + refused.stderr)
        echoed = [c for c in sandbox.calls if c.status in (400, 500)]
        assert echoed, "the echoing faults fired"
        everything = "".join(outputs).encode() + _every_byte(tmp_path)
        client = s3_client(endpoint)
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for entry in page.get("Contents", []):
                obj = client.get_object(Bucket=bucket, Key=entry["Key"])
                everything += obj["Body"].read() + repr(obj["Metadata"]).encode()
        assert TOKEN.encode() not in everything
        assert REFUSED.encode() not in everything
        assert "[redacted]" in "".join(outputs)  # the echoed headers were there, masked
        downloads = [c for c in sandbox.calls if c.path.startswith("/download/")]
        assert downloads and all(c.authorization is None for c in downloads)


def test_files_syncd_creates_are_not_world_readable(sandbox: Sandbox, tmp_path: Path) -> None:
    config = sandbox_config(tmp_path, sandbox.url)
    assert run_syncd("sync", config=config).code == 0
    state = tmp_path / "state.db"
    assert stat.S_IMODE(state.stat().st_mode) & 0o077 == 0
    assets, sidecars = library_files(tmp_path / "library")
    for path in assets + sidecars:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
    for directory in (p for p in (tmp_path / "library").rglob("*") if p.is_dir()):
        assert stat.S_IMODE(directory.stat().st_mode) & 0o077 == 0, directory
