"""The behaviour every destination promises the engine, run against each registered kind.

A new destination joins by adding a builder to ``HARNESS_BUILDERS``; the registry test
below fails until it does. Where a kind cannot behave like a plain object store it says so
with a capability on its class, and the suite holds it to the alternative behaviour:

- ``replaces_files = False``: putting other bytes for an asset keeps the stored file
  (a WordPress attachment keeps its file for good);
- ``sidecar_needs_asset = True``: the sidecar is kept with the asset, so putting a sidecar
  before its asset is refused;
- ``checks_file_content = True``: the server refuses bytes that do not match the key's
  extension, so the suite's random payloads are given the format's header and trailer.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from syncd.destinations import DESTINATION_KINDS, Destination
from syncd.destinations.filesystem import FilesystemDestination
from syncd.destinations.s3 import S3Destination
from syncd.destinations.wordpress import WordpressDestination
from syncd.errors import DestinationError
from syncd.sandbox.content import header_for, trailer_for
from tests.destinations import asset_file, sha256_hex
from tests.fixtures.s3 import s3_bucket, s3_client, s3_server  # noqa: F401
from tests.fixtures.wordpress import WordpressSite, wordpress, wordpress_site  # noqa: F401

MIB = 1024 * 1024
KEY = "shutterstock/image/1079756147-red-bicycle.jpg"
NON_ASCII_KEY = "shutterstock/image/1-café-🚲.jpg"


@dataclass
class Harness:
    """A destination under test plus a view of its storage that bypasses the destination."""

    destination: Destination
    read: Callable[[str], bytes | None]  # the bytes stored at an asset key, or None
    stored_keys: Callable[[], set[str]]  # every key stored, debris (temp files, parts) included
    downloads: Path  # where test "downloaded" files are written


def filesystem_harness(request: pytest.FixtureRequest, tmp_path: Path) -> Harness:
    """A filesystem destination whose root does not exist yet (put and check create it)."""
    root = tmp_path / "library"

    def read(key: str) -> bytes | None:
        target = root / key
        return target.read_bytes() if target.is_file() else None

    def stored_keys() -> set[str]:
        if not root.exists():
            return set()
        return {path.relative_to(root).as_posix() for path in root.rglob("*") if not path.is_dir()}

    destination = FilesystemDestination("library", root)
    return Harness(destination, read, stored_keys, tmp_path / "downloads")


def s3_harness(request: pytest.FixtureRequest, tmp_path: Path) -> Harness:
    """An S3 destination on moto with a prefix and a 5 MiB multipart threshold."""
    endpoint, bucket = request.getfixturevalue("s3_bucket")
    prefix = "stock/"
    client = s3_client(endpoint)
    request.addfinalizer(client.close)

    def read(key: str) -> bytes | None:
        try:
            body: bytes = client.get_object(Bucket=bucket, Key=prefix + key)["Body"].read()
        except client.exceptions.NoSuchKey:
            return None
        return body

    def stored_keys() -> set[str]:
        keys: set[str] = set()
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys.update(entry["Key"].removeprefix(prefix) for entry in page.get("Contents", []))
        for upload in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
            keys.add(f"incomplete multipart upload of {upload['Key']}")
        return keys

    destination = S3Destination(
        "archive", bucket, prefix=prefix, endpoint_url=endpoint, multipart_threshold=5 * MIB
    )
    return Harness(destination, read, stored_keys, tmp_path / "downloads")


def wordpress_harness(request: pytest.FixtureRequest, tmp_path: Path) -> Harness:
    """A WordPress destination on a real WordPress with an empty media library."""
    site: WordpressSite = request.getfixturevalue("wordpress")

    def attachment_at(key: str) -> dict[str, Any] | None:
        found = [a for a in site.attachments(syncd_key=key) if a["meta"].get("syncd_key") == key]
        return found[0] if found else None

    def read(key: str) -> bytes | None:
        if key.endswith(".json"):
            attachment = attachment_at(key.removesuffix(".json"))
            sidecar = attachment["meta"].get("syncd_sidecar") if attachment else None
            return sidecar.encode() if sidecar else None
        attachment = attachment_at(key)
        return site.file_bytes(attachment) if attachment else None

    def stored_keys() -> set[str]:
        keys: set[str] = set()
        for attachment in site.attachments():
            key = attachment["meta"].get("syncd_key") or f"attachment {attachment['id']} without a syncd_key"
            if key in keys:
                key = f"a second attachment ({attachment['id']}) for {key}"
            keys.add(key)
            if attachment["meta"].get("syncd_sidecar"):
                keys.add(key + ".json")
        return keys

    admin = site.admin
    destination = WordpressDestination("editors", site.url, admin.username, admin.password)
    return Harness(destination, read, stored_keys, tmp_path / "downloads")


HARNESS_BUILDERS: dict[str, Callable[[pytest.FixtureRequest, Path], Harness]] = {
    "filesystem": filesystem_harness,
    "s3": s3_harness,
    "wordpress": wordpress_harness,
}


@pytest.fixture(params=sorted(HARNESS_BUILDERS))
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    built = HARNESS_BUILDERS[request.param](request, tmp_path)
    yield built
    built.destination.close()


@pytest.fixture
def destination(harness: Harness) -> Destination:
    return harness.destination


def capability(destination: Destination, name: str, default: bool) -> bool:
    """A capability the destination's class declares (see the module docstring)."""
    return bool(getattr(type(destination), name, default))


def payload(harness: Harness, key: str, size: int) -> bytes:
    """``size`` random bytes, shaped as the key's format where the destination checks content."""
    if not capability(harness.destination, "checks_file_content", False):
        return os.urandom(size)
    ext = key.rsplit(".", 1)[-1]
    head, tail = header_for(ext, size), trailer_for(ext)
    return head + os.urandom(size - len(head) - len(tail)) + tail


def sidecar_for(key: str, data: bytes) -> bytes:
    """A minimal sidecar document describing ``data`` stored at ``key``."""
    document: dict[str, Any] = {
        "schema": "syncd.asset/1",
        "source": "shutterstock",
        "file": {"key": key, "bytes": len(data), "sha256": sha256_hex(data)},
    }
    return json.dumps(document, ensure_ascii=False).encode()


def test_every_registered_kind_runs_this_suite() -> None:
    assert set(HARNESS_BUILDERS) == set(DESTINATION_KINDS)


@pytest.mark.parametrize("key", [KEY, NON_ASCII_KEY])
def test_put_then_stat_reports_size_and_sha256(harness: Harness, key: str) -> None:
    data = payload(harness, key, 70_000)
    path, info = asset_file(harness.downloads, data)

    stored = harness.destination.put(key, path, info)

    assert (stored.key, stored.bytes, stored.sha256) == (key, len(data), sha256_hex(data))
    found = harness.destination.stat(key)
    assert found is not None
    assert (found.key, found.bytes, found.sha256) == (key, len(data), sha256_hex(data))
    assert harness.read(key) == data


def test_put_of_the_same_bytes_twice_leaves_one_object(harness: Harness) -> None:
    data = payload(harness, KEY, 10_000)
    path, info = asset_file(harness.downloads, data)

    harness.destination.put(KEY, path, info)
    harness.destination.put(KEY, path, info)

    assert harness.stored_keys() == {KEY}
    assert harness.read(KEY) == data
    assert harness.destination.stat(KEY) == harness.destination.put(KEY, path, info)


def test_put_of_different_bytes_replaces_the_object_unless_files_are_kept(harness: Harness) -> None:
    old, new = payload(harness, KEY, 20_000), payload(harness, KEY, 30_000)
    harness.destination.put(KEY, *asset_file(harness.downloads, old))

    harness.destination.put(KEY, *asset_file(harness.downloads, new))

    stored = new if capability(harness.destination, "replaces_files", True) else old
    assert harness.stored_keys() == {KEY}
    assert harness.read(KEY) == stored
    found = harness.destination.stat(KEY)
    assert found is not None and (found.bytes, found.sha256) == (len(stored), sha256_hex(stored))


def test_a_reader_never_sees_a_partial_object_while_it_is_replaced(harness: Harness) -> None:
    # 6 MiB is above the S3 harness's multipart threshold, so this covers multipart too.
    versions = [payload(harness, KEY, 6 * MIB), payload(harness, KEY, 6 * MIB)]
    uploads = [asset_file(harness.downloads, data) for data in versions]
    harness.destination.put(KEY, *uploads[0])
    seen: list[bytes | None] = []
    writing = threading.Event()
    writing.set()

    def keep_reading() -> None:
        while writing.is_set():
            seen.append(harness.read(KEY))

    reader = threading.Thread(target=keep_reading)
    reader.start()
    try:
        for round_number in range(1, 5):
            harness.destination.put(KEY, *uploads[round_number % 2])
    finally:
        writing.clear()
        reader.join()

    assert seen, "the reader never ran"
    assert all(observed in versions for observed in seen)
    assert harness.read(KEY) == versions[0]
    assert harness.stored_keys() == {KEY}


def test_a_file_larger_than_the_multipart_threshold_reads_back_identical(harness: Harness) -> None:
    data = payload(harness, KEY, 12 * MIB)
    path, info = asset_file(harness.downloads, data)

    stored = harness.destination.put(KEY, path, info)

    assert stored.bytes == len(data)
    assert harness.read(KEY) == data
    found = harness.destination.stat(KEY)
    assert found is not None and (found.bytes, found.sha256) == (len(data), sha256_hex(data))
    assert harness.stored_keys() == {KEY}


def test_sidecar_round_trip(harness: Harness) -> None:
    destination = harness.destination
    destination.put(KEY, *asset_file(harness.downloads, payload(harness, KEY, 1000)))
    first = sidecar_for(KEY, b"first")
    second = sidecar_for(KEY, b"second, longer")

    destination.put_sidecar(KEY, first)
    assert destination.get_sidecar(KEY) == first

    destination.put_sidecar(KEY, second)
    assert destination.get_sidecar(KEY) == second


def test_the_sidecar_lives_next_to_the_asset(harness: Harness) -> None:
    data = payload(harness, KEY, 1000)
    document = sidecar_for(KEY, data)
    harness.destination.put(KEY, *asset_file(harness.downloads, data))

    harness.destination.put_sidecar(KEY, document)

    assert harness.stored_keys() == {KEY, KEY + ".json"}
    assert harness.read(KEY + ".json") == document


def test_a_sidecar_before_its_asset(harness: Harness) -> None:
    document = sidecar_for(KEY, b"x")

    if capability(harness.destination, "sidecar_needs_asset", False):
        with pytest.raises(DestinationError, match="no attachment holds"):
            harness.destination.put_sidecar(KEY, document)
        assert harness.stored_keys() == set()
    else:
        harness.destination.put_sidecar(KEY, document)
        assert harness.stored_keys() == {KEY + ".json"}
        assert harness.read(KEY + ".json") == document


def test_iter_sidecars_yields_exactly_the_sidecars_by_asset_key(harness: Harness) -> None:
    keys = [KEY, NON_ASCII_KEY, "shutterstock/video/2024/05/7-clip.mp4", "top-level.jpg"]
    expected: dict[str, bytes] = {}
    for number, key in enumerate(keys):
        data = payload(harness, key, 1000)
        # Each key is another asset, as in a real library (a destination may tell assets by media id).
        harness.destination.put(key, *asset_file(harness.downloads, data, media_id=str(number)))
        expected[key] = sidecar_for(key, data)
        harness.destination.put_sidecar(key, expected[key])
    # An asset without a sidecar (e.g. a crash between the two writes) is not reported.
    no_sidecar = "shutterstock/image/9-no-sidecar.jpg"
    harness.destination.put(no_sidecar, *asset_file(harness.downloads, payload(harness, no_sidecar, 100),
                                                    media_id="9"))

    found = list(harness.destination.iter_sidecars())

    assert dict(found) == expected
    assert len(found) == len(expected)


def test_iter_sidecars_of_an_empty_destination_yields_nothing(destination: Destination) -> None:
    assert list(destination.iter_sidecars()) == []


def test_stat_of_a_missing_key_is_none(destination: Destination) -> None:
    assert destination.stat(KEY) is None
    assert destination.stat(NON_ASCII_KEY) is None


def test_get_sidecar_of_a_missing_key_is_none(harness: Harness) -> None:
    assert harness.destination.get_sidecar(KEY) is None
    # An asset without its sidecar has no sidecar either.
    harness.destination.put(KEY, *asset_file(harness.downloads, payload(harness, KEY, 100)))
    assert harness.destination.get_sidecar(KEY) is None


def test_check_passes_and_leaves_nothing_behind(harness: Harness) -> None:
    harness.destination.check()

    assert harness.stored_keys() == set()
