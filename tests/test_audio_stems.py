"""Music tracks with their shorts/loops/stems archive: stored next to the track, listed in its sidecar."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx
import jsonschema

from syncd.sandbox import FaultRule, Sandbox
from tests.helpers import (
    SIDECAR_SCHEMA,
    library_files,
    run_syncd,
    sandbox_config,
    sidecar_documents,
)

HEADERS = {"Authorization": "Bearer sandbox-token", "User-Agent": "test"}
ARCHIVE = "shorts_loops_stems"


def _served_archive_sha256(sandbox: Sandbox, license_id: str) -> str:
    """What the upstream hands out for this license's archive, fetched independently of syncd."""
    answer = httpx.post(f"{sandbox.url}/v2/audio/licenses/{license_id}/downloads", headers=HEADERS).json()
    return hashlib.sha256(httpx.get(answer[ARCHIVE], headers={"User-Agent": "test"}).content).hexdigest()


def _sidecars(root: Path) -> dict[str, dict]:
    """The validated sidecars under ``root``, by media id."""
    return {document["media_id"]: document for document in sidecar_documents(root)}


def _archive_downloads(sandbox: Sandbox) -> list:
    return [c for c in sandbox.calls if c.path.startswith("/download/") and ARCHIVE in c.path]


def test_a_track_with_stems_lands_with_its_archive_next_to_it(tmp_path: Path) -> None:
    with Sandbox(seed=71, licenses=0, media_types=("audio",)) as sandbox:
        with_stems = sandbox.add_licenses(1, media_type="audio", stems_bytes=3 * 1024 * 1024)[0]
        plain = sandbox.add_licenses(1, media_type="audio")[0]
        config = sandbox_config(tmp_path, sandbox.url, source={"media": ["audio"]})
        result = run_syncd("sync", config=config)
        assert result.code == 0, result.stderr[-2000:]
        library = tmp_path / "library"
        documents = _sidecars(library)
        assets, _ = library_files(library)
        assert len(assets) == 3  # two tracks, one archive

        document = documents[with_stems["audio"]["id"]]
        entry = document["audio"][ARCHIVE]
        track = library / document["file"]["key"]
        archive = library / entry["key"]
        assert archive.parent == track.parent and archive.name == f"{track.stem}.{ARCHIVE}.zip"
        assert archive.read_bytes()[:4] == b"PK\x03\x04"
        assert archive.stat().st_size == entry["bytes"] == 3 * 1024 * 1024
        assert hashlib.sha256(archive.read_bytes()).hexdigest() == entry["sha256"]
        assert entry["sha256"] == _served_archive_sha256(sandbox, with_stems["id"])
        assert entry["content_type"] == "application/zip"
        assert ARCHIVE not in documents[plain["audio"]["id"]]["audio"]
        redownloads = [c for c in sandbox.calls if c.method == "POST" and c.path.endswith("/downloads")]
        assert len(redownloads) == 3  # one per track, plus the one this test made: no extra call for the archive

        # Nothing new: nothing fetched again. A new license of the track keeps the archive listed.
        downloads = len([c for c in sandbox.calls if c.path.startswith("/download/")])
        assert run_syncd("sync", config=config).code == 0
        assert len([c for c in sandbox.calls if c.path.startswith("/download/")]) == downloads
        sandbox.add_licenses(1, media_type="audio", media_id=with_stems["audio"]["id"], size="wav")
        assert run_syncd("sync", config=config).code == 0
        again = _sidecars(library)[with_stems["audio"]["id"]]
        assert len(again["licenses"]) == 2
        assert again["audio"][ARCHIVE] == entry
        assert archive.read_bytes()[:4] == b"PK\x03\x04"


def test_a_cut_archive_download_resumes_and_the_item_is_whole(tmp_path: Path) -> None:
    size = 6 * 1024 * 1024
    with Sandbox(seed=72, licenses=0, media_types=("audio",)) as sandbox:
        license = sandbox.add_licenses(1, media_type="audio", stems_bytes=size)[0]
        sandbox.faults.add(FaultRule(path=ARCHIVE, kind="truncate", fraction=0.5, times=1))
        config = sandbox_config(tmp_path, sandbox.url, source={"media": ["audio"]})
        result = run_syncd("sync", config=config)
        assert result.code == 0, result.stderr[-2000:]
        tries = _archive_downloads(sandbox)
        assert [c.range is not None for c in tries] == [False, True]  # resumed, not restarted
        entry = _sidecars(tmp_path / "library")[license["audio"]["id"]]["audio"][ARCHIVE]
        assert entry["bytes"] == size
        assert entry["sha256"] == _served_archive_sha256(sandbox, license["id"])
        assert hashlib.sha256((tmp_path / "library" / entry["key"]).read_bytes()).hexdigest() == entry["sha256"]


def test_an_archive_that_cannot_be_fetched_fails_the_track_and_a_retry_completes_it(tmp_path: Path) -> None:
    with Sandbox(seed=73, licenses=0, media_types=("audio",)) as sandbox:
        license = sandbox.add_licenses(1, media_type="audio", stems_bytes=64 * 1024)[0]
        sandbox.faults.add(FaultRule(path=ARCHIVE, kind="status", status=503, times=-1))
        config = sandbox_config(tmp_path, sandbox.url, source={"media": ["audio"]})
        assert run_syncd("sync", config=config).code == 1  # not everything is synced
        assert library_files(tmp_path / "library") == ([], [])  # no track without its archive, no sidecar
        sandbox.faults.clear()
        assert run_syncd("sync", config=config).code == 0
        document = _sidecars(tmp_path / "library")[license["audio"]["id"]]
        assert document["audio"][ARCHIVE]["sha256"] == _served_archive_sha256(sandbox, license["id"])


def test_in_s3_the_archive_is_its_own_object_with_its_own_sha256(tmp_path: Path, s3_bucket) -> None:  # type: ignore[no-untyped-def]
    from tests.fixtures.s3 import s3_client

    endpoint, bucket = s3_bucket
    client = s3_client(endpoint)
    with Sandbox(seed=74, licenses=0, media_types=("audio",)) as sandbox:
        license = sandbox.add_licenses(1, media_type="audio", stems_bytes=9 * 1024 * 1024)[0]
        config = sandbox_config(tmp_path, sandbox.url, source={"media": ["audio"]}, destinations=[
            {"name": "archive", "kind": "s3", "bucket": bucket, "endpoint_url": endpoint}])
        result = run_syncd("sync", config=config)
        assert result.code == 0, result.stderr[-2000:]
        served = _served_archive_sha256(sandbox, license["id"])
    keys = sorted(c["Key"] for c in client.list_objects_v2(Bucket=bucket)["Contents"])
    sidecar_key = next(k for k in keys if k.endswith(".json"))
    document = json.loads(client.get_object(Bucket=bucket, Key=sidecar_key)["Body"].read())
    jsonschema.validate(document, SIDECAR_SCHEMA)
    entry = document["audio"][ARCHIVE]
    assert keys == sorted([document["file"]["key"], entry["key"], sidecar_key])
    head = client.head_object(Bucket=bucket, Key=entry["key"])
    assert head["ContentType"] == "application/zip"
    assert head["Metadata"]["syncd-sha256"] == entry["sha256"] == served
    assert head["Metadata"]["syncd-media-id"] == license["audio"]["id"]
    body = client.get_object(Bucket=bucket, Key=entry["key"])["Body"].read()
    assert hashlib.sha256(body).hexdigest() == served
