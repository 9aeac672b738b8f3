"""S3-specific behaviour: object metadata, checksums, check() diagnostics, failed uploads."""

from __future__ import annotations

import base64
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from syncd.destinations.s3 import S3Destination
from syncd.errors import ConfigError, DestinationError
from tests.destinations import asset_file, sha256_hex
from tests.fixtures.s3 import s3_bucket, s3_client, s3_server  # noqa: F401

MIB = 1024 * 1024
KEY = "shutterstock/image/1079756147-red-bicycle.jpg"
PREFIX = "stock/"


@pytest.fixture
def destination(s3_bucket: tuple[str, str]) -> Iterator[S3Destination]:  # noqa: F811
    endpoint, bucket = s3_bucket
    built = S3Destination(
        "archive", bucket, prefix=PREFIX, endpoint_url=endpoint, multipart_threshold=5 * MIB
    )
    yield built
    built.close()


@pytest.fixture
def client(s3_bucket: tuple[str, str]) -> Iterator[Any]:  # noqa: F811
    made = s3_client(s3_bucket[0])
    yield made
    made.close()


def closed_port_endpoint() -> str:
    """An http endpoint on 127.0.0.1 where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_object_carries_content_type_and_exactly_the_syncd_metadata(
    destination: S3Destination, client: Any, tmp_path: Path
) -> None:
    data = os.urandom(5000)
    path, info = asset_file(tmp_path, data, content_type="image/png", license_id="i42")

    destination.put(KEY, path, info)

    head = client.head_object(Bucket=destination.bucket, Key=PREFIX + KEY)
    assert head["ContentType"] == "image/png"
    assert head["Metadata"] == {
        "syncd-source": "shutterstock",
        "syncd-media-id": "1079756147",
        "syncd-license-id": "i42",
        "syncd-sha256": sha256_hex(data),
    }


def test_a_hostile_non_ascii_media_id_is_stored_percent_encoded(
    destination: S3Destination, client: Any, tmp_path: Path
) -> None:
    hostile = "9763363ao-café 🚲\r\nX-Injected: 1 %41"
    path, info = asset_file(tmp_path, b"bytes", media_id=hostile)

    destination.put(KEY, path, info)

    stored = client.head_object(Bucket=destination.bucket, Key=PREFIX + KEY)["Metadata"][
        "syncd-media-id"
    ]
    assert stored.isascii() and stored.isprintable() and " " not in stored
    assert unquote(stored) == hostile
    assert destination.stat(KEY) is not None


def test_an_overlong_metadata_value_is_truncated_not_refused(
    destination: S3Destination, client: Any, tmp_path: Path
) -> None:
    path, info = asset_file(tmp_path, b"bytes", media_id="é" * 2000)

    destination.put(KEY, path, info)

    stored = client.head_object(Bucket=destination.bucket, Key=PREFIX + KEY)["Metadata"][
        "syncd-media-id"
    ]
    assert 0 < len(stored) <= 256
    assert set(unquote(stored)) == {"é"}  # cut between escapes, never inside one


def test_a_single_part_upload_sends_the_verified_sha256_for_the_server_to_check(
    destination: S3Destination, client: Any, tmp_path: Path
) -> None:
    data = os.urandom(4096)
    path, info = asset_file(tmp_path, data)

    destination.put(KEY, path, info)

    head = client.head_object(Bucket=destination.bucket, Key=PREFIX + KEY, ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == base64.b64encode(bytes.fromhex(sha256_hex(data))).decode()
    assert S3Destination.verifies_checksum is True


def test_a_multipart_upload_carries_sha256_checksums(
    destination: S3Destination, client: Any, tmp_path: Path
) -> None:
    path, info = asset_file(tmp_path, os.urandom(11 * MIB))

    destination.put(KEY, path, info)

    head = client.head_object(Bucket=destination.bucket, Key=PREFIX + KEY, ChecksumMode="ENABLED")
    assert head.get("ChecksumSHA256")
    assert head["ContentLength"] == 11 * MIB


def test_a_local_file_that_changed_since_verification_is_refused(
    destination: S3Destination, client: Any, tmp_path: Path
) -> None:
    path, info = asset_file(tmp_path, b"verified bytes")
    path.write_bytes(b"truncated")

    with pytest.raises(DestinationError, match="were verified"):
        destination.put(KEY, path, info)
    assert destination.stat(KEY) is None


def test_a_failed_multipart_upload_leaves_no_parts_and_keeps_the_old_object(
    destination: S3Destination, client: Any, tmp_path: Path
) -> None:
    old = b"the previous version"
    destination.put(KEY, *asset_file(tmp_path, old))
    aborts: list[str] = []

    def fail_second_part(request: Any, **_: Any) -> None:
        if "partNumber=2" in request.url:
            raise OSError("simulated read error in part 2")

    def fail_first_abort(request: Any, **_: Any) -> None:
        # s3transfer's own abort fails too, so only the destination's clean-up remains.
        aborts.append(request.url)
        if len(aborts) == 1:
            raise OSError("simulated failure of the first abort")

    events = destination.client.meta.events
    events.register("before-send.s3.UploadPart", fail_second_part)
    events.register("before-send.s3.AbortMultipartUpload", fail_first_abort)

    with pytest.raises(DestinationError, match=destination.bucket):
        destination.put(KEY, *asset_file(tmp_path, os.urandom(12 * MIB)))

    assert len(aborts) >= 2
    assert client.list_multipart_uploads(Bucket=destination.bucket).get("Uploads", []) == []
    assert client.get_object(Bucket=destination.bucket, Key=PREFIX + KEY)["Body"].read() == old


def test_an_upload_abandoned_by_a_killed_run_is_aborted_by_the_next_put(
    destination: S3Destination, client: Any, tmp_path: Path
) -> None:
    client.create_multipart_upload(Bucket=destination.bucket, Key=PREFIX + KEY)
    client.create_multipart_upload(Bucket=destination.bucket, Key=PREFIX + KEY + "-other")

    destination.put(KEY, *asset_file(tmp_path, os.urandom(6 * MIB)))

    remaining = client.list_multipart_uploads(Bucket=destination.bucket).get("Uploads", [])
    assert [upload["Key"] for upload in remaining] == [PREFIX + KEY + "-other"]


def test_an_upload_error_names_the_bucket_and_cause_but_no_secret(
    s3_server: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    missing = S3Destination("archive", "no-such-bucket-here", endpoint_url=s3_server)
    path, info = asset_file(tmp_path, b"bytes")

    with pytest.raises(DestinationError) as failure:
        missing.put(KEY, path, info)

    message = str(failure.value)
    assert "'no-such-bucket-here'" in message and s3_server in message and "NoSuchBucket" in message
    assert os.environ["AWS_SECRET_ACCESS_KEY"] not in message


def test_stat_without_syncd_metadata_reports_no_sha256(
    destination: S3Destination, client: Any
) -> None:
    client.put_object(Bucket=destination.bucket, Key=PREFIX + KEY, Body=b"uploaded by hand")

    found = destination.stat(KEY)

    assert found is not None and (found.bytes, found.sha256) == (16, None)


def test_iter_sidecars_ignores_objects_outside_the_prefix(
    destination: S3Destination, client: Any
) -> None:
    client.put_object(Bucket=destination.bucket, Key="elsewhere/a.jpg.json", Body=b"{}")
    destination.put_sidecar(KEY, b"{}")

    assert list(destination.iter_sidecars()) == [(KEY, b"{}")]


def test_check_on_a_missing_bucket_names_the_bucket_key(s3_server: str) -> None:  # noqa: F811
    missing = S3Destination("archive", "no-such-bucket-here", endpoint_url=s3_server)

    with pytest.raises(ConfigError, match="does not exist") as failure:
        missing.check()

    assert failure.value.key == "destinations.archive.bucket"


def test_check_on_an_unreachable_endpoint_names_the_endpoint_key_quickly(
    s3_server: str,  # noqa: F811  (for the test credentials)
) -> None:
    endpoint = closed_port_endpoint()
    fast_failing = s3_client(endpoint, retries={"max_attempts": 1}, connect_timeout=2)
    unreachable = S3Destination("archive", "dam", endpoint_url=endpoint, client=fast_failing)
    started = time.monotonic()

    with pytest.raises(ConfigError, match="cannot connect") as failure:
        unreachable.check()

    assert failure.value.key == "destinations.archive.endpoint_url"
    assert time.monotonic() - started < 5


def test_check_without_credentials_explains_the_credential_chain(
    s3_bucket: tuple[str, str],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    endpoint, bucket = s3_bucket
    anonymous = S3Destination("archive", bucket, endpoint_url=endpoint)

    with pytest.raises(ConfigError, match="AWS_ACCESS_KEY_ID") as failure:
        anonymous.check()

    assert "AWS_PROFILE" in str(failure.value)
    assert failure.value.key == "destinations.archive"


def test_check_on_a_good_bucket_leaves_nothing_behind(
    destination: S3Destination, client: Any
) -> None:
    destination.check()

    assert client.list_objects_v2(Bucket=destination.bucket).get("KeyCount", 0) == 0


def test_close_leaves_an_injected_client_open(s3_bucket: tuple[str, str]) -> None:  # noqa: F811
    endpoint, bucket = s3_bucket
    shared = s3_client(endpoint)
    S3Destination("archive", bucket, client=shared).close()

    shared.head_bucket(Bucket=bucket)  # still usable
    shared.close()


def test_a_media_id_with_a_lone_surrogate_does_not_crash(
    destination: S3Destination, client: Any, tmp_path: Path
) -> None:
    path, info = asset_file(tmp_path, b"bytes", media_id="12\ud800")  # valid JSON, invalid UTF-8

    destination.put(KEY, path, info)

    stored = client.head_object(Bucket=destination.bucket, Key=PREFIX + KEY)["Metadata"][
        "syncd-media-id"
    ]
    assert stored == "12?"
