"""Syncing into a real S3-compatible server (moto over loopback): objects, metadata, idempotence."""

from __future__ import annotations

import json
from pathlib import Path

from syncd.sandbox import Sandbox
from syncd.state import StateStore
from tests.fixtures.s3 import s3_client
from tests.helpers import library_files, lose_state, run_syncd, sandbox_config


def _s3_destination(endpoint: str, bucket: str) -> dict:
    return {"name": "archive", "kind": "s3", "bucket": bucket, "prefix": "stock/", "endpoint_url": endpoint}


def _objects(client, bucket: str) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    found = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for entry in page.get("Contents", []):
            found[entry["Key"]] = entry
    return found


def test_sync_to_s3_stores_files_metadata_and_sidecars(sandbox: Sandbox, tmp_path: Path, s3_bucket) -> None:  # type: ignore[no-untyped-def]
    endpoint, bucket = s3_bucket
    config = sandbox_config(tmp_path, sandbox.url, destinations=[_s3_destination(endpoint, bucket)])
    result = run_syncd("sync", config=config)
    assert result.code == 0, result.stderr
    client = s3_client(endpoint)
    objects = _objects(client, bucket)
    files = [k for k in objects if not k.endswith(".json")]
    sidecars = [k for k in objects if k.endswith(".json")]
    assert files and len(files) == len(sidecars)
    assert all(k.startswith("stock/shutterstock/image/") for k in objects)
    for key in files:
        head = client.head_object(Bucket=bucket, Key=key)
        document = json.loads(client.get_object(Bucket=bucket, Key=key + ".json")["Body"].read())
        assert head["ContentType"] == document["file"]["content_type"] == "image/jpeg"
        assert head["ContentLength"] == document["file"]["bytes"]
        metadata = head["Metadata"]
        assert metadata["syncd-source"] == "shutterstock"
        assert metadata["syncd-media-id"] == document["media_id"]
        assert metadata["syncd-license-id"] in {entry["id"] for entry in document["licenses"]}
        assert metadata["syncd-sha256"] == document["file"]["sha256"]
        assert document["file"]["key"] == key.removeprefix("stock/")


def test_lost_state_adopts_what_is_already_in_the_bucket(sandbox: Sandbox, tmp_path: Path, s3_bucket) -> None:  # type: ignore[no-untyped-def]
    endpoint, bucket = s3_bucket
    client = s3_client(endpoint)
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    config = sandbox_config(tmp_path, sandbox.url, destinations=[_s3_destination(endpoint, bucket)])
    assert run_syncd("sync", config=config).code == 0
    lose_state(tmp_path)
    before = len(sandbox.calls)
    assert run_syncd("sync", config=config).code == 0
    assert not [c for c in sandbox.calls[before:] if c.path.startswith("/download/")]
    versions = client.list_object_versions(Bucket=bucket).get("Versions", [])
    files = [v for v in versions if not v["Key"].endswith(".json")]
    assert len(files) == len({v["Key"] for v in files})  # one version each: nothing uploaded twice


def test_every_destination_gets_every_asset(sandbox: Sandbox, tmp_path: Path, s3_bucket) -> None:  # type: ignore[no-untyped-def]
    endpoint, bucket = s3_bucket
    destinations = [_s3_destination(endpoint, bucket),
                    {"name": "library", "kind": "filesystem", "path": str(tmp_path / "library")}]
    config = sandbox_config(tmp_path, sandbox.url, destinations=destinations)
    assert run_syncd("sync", config=config).code == 0
    assets, _ = library_files(tmp_path / "library")
    s3_files = [k for k in _objects(s3_client(endpoint), bucket) if not k.endswith(".json")]
    assert len(assets) == len(s3_files) > 0
    assert {a.relative_to(tmp_path / "library").as_posix() for a in assets} == {k.removeprefix("stock/") for k in s3_files}
    downloads = [c for c in sandbox.calls if c.path.startswith("/download/")]
    assert len(downloads) == len(assets)  # downloaded once, stored twice


def test_rebuild_state_from_s3_sidecars(sandbox: Sandbox, tmp_path: Path, s3_bucket) -> None:  # type: ignore[no-untyped-def]
    endpoint, bucket = s3_bucket
    config = sandbox_config(tmp_path, sandbox.url, destinations=[_s3_destination(endpoint, bucket)])
    assert run_syncd("sync", config=config).code == 0
    synced = StateStore(f"sqlite:///{tmp_path / 'state.db'}").status_counts()["synced"]
    lose_state(tmp_path)
    result = run_syncd("rebuild-state", "--destination", "archive", config=config)
    assert result.code == 0, result.stderr
    assert StateStore(f"sqlite:///{tmp_path / 'state.db'}").status_counts()["synced"] == synced
    before = len(sandbox.calls)
    assert run_syncd("sync", config=config).code == 0
    assert not [c for c in sandbox.calls[before:] if c.method == "POST" or c.path.startswith("/download/")]


def test_check_verifies_credentials_and_destinations_without_changing_anything(sandbox: Sandbox, tmp_path: Path, s3_bucket) -> None:  # type: ignore[no-untyped-def]
    endpoint, bucket = s3_bucket
    config = sandbox_config(tmp_path, sandbox.url, destinations=[_s3_destination(endpoint, bucket)])
    result = run_syncd("check", config=config)
    assert result.code == 0, result.stderr
    assert "token accepted" in result.stdout and "archive" in result.stdout
    assert not _objects(s3_client(endpoint), bucket)
    assert not (tmp_path / "state.db").exists()
    refused = run_syncd("check", config=config, token="wrong")
    assert refused.code == 3
    missing = sandbox_config(tmp_path, sandbox.url, destinations=[_s3_destination(endpoint, bucket + "-missing")])
    result = run_syncd("check", config=missing)
    assert result.code == 2 and "bucket" in result.stderr
