"""Every Shutterstock media type through one source: right bytes, extension, type and sidecar."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx

from syncd.sandbox import FaultRule, Sandbox
from tests.helpers import run_syncd, sandbox_config, sidecar_documents

ALL = ("image", "video", "audio", "sfx", "editorial_image", "editorial_video")
FAMILY = {"image": "image/", "video": "video/", "audio": "audio/", "sfx": "audio/",
          "editorial_image": "image/", "editorial_video": "video/"}
EXTENSIONS = {"image": {"jpg", "eps"}, "video": {"mp4", "mov"}, "audio": {"mp3", "wav"}, "sfx": {"mp3", "wav"},
              "editorial_image": {"jpg"}, "editorial_video": {"mov", "mp4"}}


def test_a_mixed_sync_lands_every_type_with_the_right_bytes_and_sidecar(tmp_path: Path) -> None:
    with Sandbox(seed=61, licenses=5, media_types=ALL) as sandbox:
        config = sandbox_config(tmp_path, sandbox.url, source={"media": ["image", "video", "audio", "sfx", "editorial"]})
        result = run_syncd("sync", config=config)
        assert result.code == 0, result.stderr[-2000:]
        documents = sidecar_documents(tmp_path / "library")
        seen = {d["media_type"] for d in documents}
        assert seen == {"image", "video", "audio", "sfx"}  # editorial: no redownload, re-licensing off
        for document in documents:
            media_type = document["media_type"]
            path = tmp_path / "library" / document["file"]["key"]
            assert hashlib.sha256(path.read_bytes()).hexdigest() == document["file"]["sha256"]
            assert path.suffix.lstrip(".") in EXTENSIONS[media_type], path.name
            assert document["file"]["content_type"].startswith(FAMILY[media_type])
            assert media_type in document and isinstance(document[media_type], dict)
            assert document["editorial"] is False
        status = json.loads(run_syncd("status", "--json", config=config).stdout)
        editorial = [p for p in status["problems"] if p["media_type"].startswith("editorial")]
        assert editorial and all(p["state"] == "skipped" and "redownload" in p["reason"] for p in editorial)


def test_editorial_is_relicensed_when_configured_and_keeps_its_byline(tmp_path: Path) -> None:
    with Sandbox(seed=62, licenses=3, media_types=("editorial_image", "editorial_video")) as sandbox:
        body = httpx.get(f"{sandbox.url}/v2/user/subscriptions",
                         headers={"Authorization": "Bearer sandbox-token", "User-Agent": "test"}).json()
        config = sandbox_config(tmp_path, sandbox.url, source={
            "media": ["editorial"], "relicense": True, "max_relicenses_per_run": 20,
            "subscription_id": body["data"][0]["id"]})
        result = run_syncd("sync", config=config)
        assert result.code == 0, result.stderr[-2000:]
        documents = sidecar_documents(tmp_path / "library")
        assert {d["media_type"] for d in documents} == {"editorial_image", "editorial_video"}
        for document in documents:
            assert document["editorial"] is True
            assert document["description"]
            assert any("replaces" in entry for entry in document["licenses"])
        posts = [c for c in sandbox.calls if c.method == "POST" and c.path.startswith("/v2/editorial/")]
        assert all(c.status == 200 for c in posts) and len(posts) == len(documents)


def test_an_interrupted_large_download_resumes_with_a_range_request(tmp_path: Path) -> None:
    size = 24 * 1024 * 1024
    with Sandbox(seed=63, licenses=0, media_types=("video",)) as sandbox:
        sandbox.add_licenses(1, media_type="video", is_downloadable=True, file_bytes=size, size="hd")
        sandbox.faults.add(FaultRule(path=r"^/download/", kind="truncate", fraction=0.6, times=1))
        config = sandbox_config(tmp_path, sandbox.url, source={"media": ["video"]})
        result = run_syncd("sync", config=config)
        assert result.code == 0, result.stderr[-2000:]
        downloads = [c for c in sandbox.calls if c.path.startswith("/download/")]
        assert len(downloads) == 2
        assert downloads[0].range is None
        resumed_from = int(downloads[1].range.removeprefix("bytes=").rstrip("-"))
        assert resumed_from >= size * 0.5  # the second request asked only for the rest
        served = resumed_from + (size - resumed_from)  # what the two answers carried in all
        assert served < 1.5 * size
        document = sidecar_documents(tmp_path / "library")[0]
        path = tmp_path / "library" / document["file"]["key"]
        assert path.stat().st_size == size == document["file"]["bytes"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == document["file"]["sha256"]
        license = sandbox.licenses("video")[0]
        headers = {"Authorization": "Bearer sandbox-token", "User-Agent": "test"}
        url = httpx.post(f"{sandbox.url}/v2/videos/licenses/{license['id']}/downloads", headers=headers,
                         json={"size": "hd"}).json()["url"]
        original = hashlib.sha256(httpx.get(url, headers={"User-Agent": "test"}).content).hexdigest()
        assert original == document["file"]["sha256"]  # the resumed file is the file, byte for byte


def test_a_large_video_survives_a_cut_and_lands_whole_in_s3(tmp_path: Path, s3_bucket) -> None:  # type: ignore[no-untyped-def]
    from tests.fixtures.s3 import s3_client

    endpoint, bucket = s3_bucket
    client = s3_client(endpoint)
    size = 80 * 1024 * 1024
    with Sandbox(seed=64, licenses=0, media_types=("video",)) as sandbox:
        sandbox.add_licenses(1, media_type="video", is_downloadable=True, file_bytes=size, size="4k")
        sandbox.faults.add(FaultRule(path=r"^/download/", kind="truncate", fraction=0.5, times=1))
        config = sandbox_config(tmp_path, sandbox.url, source={"media": ["video"]}, destinations=[
            {"name": "archive", "kind": "s3", "bucket": bucket, "endpoint_url": endpoint}])
        result = run_syncd("sync", config=config)
        assert result.code == 0, result.stderr[-3000:]
        downloads = [c for c in sandbox.calls if c.path.startswith("/download/")]
        assert [c.range is not None for c in downloads] == [False, True]  # resumed, not restarted
    current = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    assert not client.list_multipart_uploads(Bucket=bucket).get("Uploads")
    video = next(c["Key"] for c in current if not c["Key"].endswith(".json"))
    head = client.head_object(Bucket=bucket, Key=video)
    document = json.loads(client.get_object(Bucket=bucket, Key=video + ".json")["Body"].read())
    assert head["ContentLength"] == size == document["file"]["bytes"]
    assert head["Metadata"]["syncd-sha256"] == document["file"]["sha256"]
    assert head["ContentType"].startswith("video/")
    body = client.get_object(Bucket=bucket, Key=video)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == document["file"]["sha256"]
