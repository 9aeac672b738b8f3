"""SIGKILL at random moments, then `sync` again: every license synced exactly once per destination."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from syncd.sandbox import FaultRule, Sandbox
from syncd.state import StateStore
from tests.fixtures.s3 import s3_client
from tests.helpers import TOKEN_ENV, library_files, run_syncd, sandbox_config


def _start_sync(config: Path) -> subprocess.Popen:
    environment = {**os.environ, TOKEN_ENV: "sandbox-token"}
    return subprocess.Popen([sys.executable, "-m", "syncd.cli", "--log-format", "json", "--config", str(config), "sync"],
                            env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _kill(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)


def _sync_killed_after(config: Path, seconds: float) -> bool:
    """Start `sync` and SIGKILL it after ``seconds``; returns whether it was still running then."""
    process = _start_sync(config)
    time.sleep(seconds)
    killed = process.poll() is None
    if killed:
        process.send_signal(signal.SIGKILL)
    process.wait()
    return killed


def _assert_exactly_once(sandbox: Sandbox, tmp_path: Path, endpoint: str, bucket: str) -> None:
    downloadable = {str(lic["image"]["id"]) for lic in sandbox.licenses("image") if lic.get("is_downloadable", True)}
    assets, sidecars = library_files(tmp_path / "library")
    assert not [p for p in (tmp_path / "library").rglob("*") if "syncd-tmp" in p.name]
    documents = [json.loads(p.read_text()) for p in sidecars]
    assert sorted(d["media_id"] for d in documents) == sorted(downloadable)  # each media once
    for document in documents:
        asset = tmp_path / "library" / document["file"]["key"]
        assert hashlib.sha256(asset.read_bytes()).hexdigest() == document["file"]["sha256"]
    client = s3_client(endpoint)
    keys = [e["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for e in page.get("Contents", [])]
    assert sorted(k.removeprefix("stock/") for k in keys) == sorted(
        p.relative_to(tmp_path / "library").as_posix() for p in assets + sidecars)
    assert not client.list_multipart_uploads(Bucket=bucket).get("Uploads")
    versions = [v["Key"] for v in client.list_object_versions(Bucket=bucket).get("Versions", []) if not v["Key"].endswith(".json")]
    assert len(versions) == len(set(versions))  # no asset uploaded twice
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    counts = store.status_counts()
    assert counts["queued"] == 0 and counts["failed"] == 0
    licensed = [c for c in sandbox.calls if c.method == "POST" and c.path == "/v2/images/licenses"]
    assert licensed == []  # nothing was ever bought


def test_random_sigkills_lose_nothing_and_duplicate_nothing(tmp_path: Path, s3_bucket) -> None:  # type: ignore[no-untyped-def]
    endpoint, bucket = s3_bucket
    s3_client(endpoint).put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    rng = random.Random(20261130)
    with Sandbox(seed=11, licenses=60) as sandbox:
        sandbox.faults.add(FaultRule(path=r"^/download/", kind="slow", delay=0.05, times=-1))
        destinations = [{"name": "library", "kind": "filesystem", "path": str(tmp_path / "library")},
                        {"name": "archive", "kind": "s3", "bucket": bucket, "prefix": "stock/", "endpoint_url": endpoint}]
        config = sandbox_config(tmp_path, sandbox.url, destinations=destinations)
        kills = 0
        for round_number in range(8):
            kills += _sync_killed_after(config, rng.uniform(0.3, 2.0))
            if round_number == 3:
                sandbox.add_licenses(5, media_type="image", is_downloadable=True)  # history moves on meanwhile
        assert kills >= 4
        final = run_syncd("sync", config=config, timeout=300)
        assert final.code == 0, final.stderr[-2000:]
        _assert_exactly_once(sandbox, tmp_path, endpoint, bucket)


def test_a_kill_right_after_page_one_brings_page_two_back(tmp_path: Path, s3_bucket) -> None:  # type: ignore[no-untyped-def]
    endpoint, bucket = s3_bucket
    with Sandbox(seed=12, licenses=230) as sandbox:
        destinations = [{"name": "library", "kind": "filesystem", "path": str(tmp_path / "library")},
                        {"name": "archive", "kind": "s3", "bucket": bucket, "prefix": "stock/", "endpoint_url": endpoint}]
        config = sandbox_config(tmp_path, sandbox.url, destinations=destinations)
        process = _start_sync(config)

        def kill_after_page_one(call) -> None:  # type: ignore[no-untyped-def]
            if call.path == "/v2/images/licenses" and call.query.get("page") == ["1"]:
                # Page 2 is held back 1.5 s: the kill lands after page 1 was recorded, before page 2.
                threading.Timer(0.7, _kill, (process,)).start()

        sandbox.faults.add(FaultRule(path=r"^/v2/images/licenses$", kind="slow", delay=1.5, after=1, times=1))
        sandbox.on_request(kill_after_page_one)
        process.wait()
        sandbox.on_request(lambda call: None)
        store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
        assert store.frontier("shutterstock", "image") is None
        assert sum(store.status_counts().values()) == 200
        assert run_syncd("sync", config=config, timeout=300).code == 0
        assert sum(store.status_counts().values()) == 230
        _assert_exactly_once(sandbox, tmp_path, endpoint, bucket)


def test_random_sigkills_with_music_and_stems_store_each_file_once(tmp_path: Path, s3_bucket) -> None:  # type: ignore[no-untyped-def]
    endpoint, bucket = s3_bucket
    client = s3_client(endpoint)
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    rng = random.Random(20261201)
    with Sandbox(seed=12, licenses=0, media_types=("audio",)) as sandbox:
        sandbox.add_licenses(16, media_type="audio", stems_bytes=200_000)
        sandbox.faults.add(FaultRule(path=r"^/download/", kind="slow", delay=0.1, times=-1))
        destinations = [{"name": "library", "kind": "filesystem", "path": str(tmp_path / "library")},
                        {"name": "archive", "kind": "s3", "bucket": bucket, "endpoint_url": endpoint}]
        config = sandbox_config(tmp_path, sandbox.url, source={"media": ["audio"]}, destinations=destinations)
        kills = sum(_sync_killed_after(config, rng.uniform(0.4, 1.5)) for _ in range(6))
        assert kills >= 3
        final = run_syncd("sync", config=config, timeout=300)
        assert final.code == 0, final.stderr[-2000:]
    assets, sidecars = library_files(tmp_path / "library")
    documents = [json.loads(p.read_text()) for p in sidecars]
    assert len(documents) == 16 and len(assets) == 32  # each track once, each with its archive
    for document in documents:
        for entry in (document["file"], document["audio"]["shorts_loops_stems"]):
            assert hashlib.sha256((tmp_path / "library" / entry["key"]).read_bytes()).hexdigest() == entry["sha256"]
    versions = [v["Key"] for v in client.list_object_versions(Bucket=bucket).get("Versions", [])
                if not v["Key"].endswith(".json")]
    assert sorted(versions) == sorted(p.relative_to(tmp_path / "library").as_posix() for p in assets)  # once each
    assert not client.list_multipart_uploads(Bucket=bucket).get("Uploads")
