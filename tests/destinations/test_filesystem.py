"""Filesystem-specific behaviour: atomic writes, temp-file hygiene, confinement, check()."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

import pytest

from syncd.destinations.filesystem import FilesystemDestination
from syncd.errors import ConfigError, DestinationError
from tests.destinations import asset_file, sha256_hex

KEY = "shutterstock/image/1079756147-red-bicycle.jpg"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "library"


@pytest.fixture
def destination(root: Path) -> FilesystemDestination:
    return FilesystemDestination("library", root)


@pytest.fixture
def downloads(tmp_path: Path) -> Path:
    return tmp_path / "downloads"


def files_under(directory: Path) -> set[str]:
    return {path.name for path in directory.iterdir()}


def test_a_stale_temp_file_from_a_killed_run_is_removed_by_the_next_put(
    destination: FilesystemDestination, root: Path, downloads: Path
) -> None:
    directory = root / "shutterstock" / "image"
    directory.mkdir(parents=True)
    (directory / ".x.syncd-tmp-abc").write_bytes(b"half of an old upload")
    (directory / f".{KEY.rsplit('/', 1)[1]}.syncd-tmp-0123abcd").write_bytes(b"half")

    destination.put("shutterstock/image/x", *asset_file(downloads, b"complete"))

    assert files_under(directory) == {"x"}
    assert (directory / "x").read_bytes() == b"complete"


def test_a_temp_file_of_a_live_writer_is_left_alone(
    destination: FilesystemDestination, root: Path, downloads: Path
) -> None:
    directory = root / "shutterstock" / "image"
    directory.mkdir(parents=True)
    live = directory / ".x.syncd-tmp-live"
    with open(live, "wb") as in_progress:
        fcntl.flock(in_progress, fcntl.LOCK_EX)  # as a writer in another process holds it

        destination.put("shutterstock/image/x", *asset_file(downloads, b"complete"))

        assert live.exists()


def test_a_file_changed_since_verification_is_not_published(
    destination: FilesystemDestination, root: Path, downloads: Path
) -> None:
    destination.put(KEY, *asset_file(downloads, b"old version"))
    path, info = asset_file(downloads, b"new version")
    path.write_bytes(b"NEW VERSION")  # same size, different bytes

    with pytest.raises(DestinationError, match="changed since it was verified"):
        destination.put(KEY, path, info)

    assert (root / KEY).read_bytes() == b"old version"
    assert files_under((root / KEY).parent) == {KEY.rsplit("/", 1)[1]}


def test_a_missing_local_file_fails_the_put_and_keeps_the_old_file(
    destination: FilesystemDestination, root: Path, downloads: Path
) -> None:
    destination.put(KEY, *asset_file(downloads, b"old version"))
    path, info = asset_file(downloads, b"gone")
    path.unlink()

    with pytest.raises(DestinationError, match="unreadable"):
        destination.put(KEY, path, info)

    assert (root / KEY).read_bytes() == b"old version"
    assert files_under((root / KEY).parent) == {KEY.rsplit("/", 1)[1]}


@pytest.mark.parametrize(
    "key",
    [
        "../outside.jpg",
        "a/../../outside.jpg",
        "/tmp/outside.jpg",
        "",
        "a//b.jpg",
        "./a.jpg",
        "a\x00b",
    ],
)
def test_a_key_that_is_not_a_safe_relative_path_is_refused(
    destination: FilesystemDestination, tmp_path: Path, downloads: Path, key: str
) -> None:
    path, info = asset_file(downloads, b"bytes")

    with pytest.raises(DestinationError, match="refused"):
        destination.put(key, path, info)
    with pytest.raises(DestinationError, match="refused"):
        destination.put_sidecar(key, b"{}")

    assert not (tmp_path / "outside.jpg").exists()


def test_a_key_through_a_symlink_leading_out_of_the_root_is_refused(
    destination: FilesystemDestination, root: Path, tmp_path: Path, downloads: Path
) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    root.mkdir()
    (root / "shutterstock").symlink_to(outside)

    with pytest.raises(DestinationError, match="outside"):
        destination.put(KEY, *asset_file(downloads, b"bytes"))

    assert list(outside.iterdir()) == []


def test_a_basename_at_the_length_limit_still_gets_a_temp_file(
    destination: FilesystemDestination, root: Path, downloads: Path
) -> None:
    key = "shutterstock/image/" + "é" * 125 + ".jpg"  # 254 bytes, the limit is 255
    destination.put(key, *asset_file(downloads, b"first"))

    destination.put(key, *asset_file(downloads, b"second"))

    assert (root / key).read_bytes() == b"second"
    assert files_under((root / key).parent) == {key.rsplit("/", 1)[1]}


def test_stat_trusts_a_sidecar_that_describes_the_file(
    destination: FilesystemDestination, downloads: Path
) -> None:
    destination.put(KEY, *asset_file(downloads, b"12345"))
    vouched = "a" * 64  # not the real digest: proves the file was not read
    destination.put_sidecar(KEY, json.dumps({"file": {"bytes": 5, "sha256": vouched}}).encode())

    found = destination.stat(KEY)

    assert found is not None and found.sha256 == vouched


def test_stat_computes_the_sha256_when_the_sidecar_does_not_match(
    destination: FilesystemDestination, root: Path, downloads: Path
) -> None:
    destination.put(KEY, *asset_file(downloads, b"12345"))
    destination.put_sidecar(KEY, json.dumps({"file": {"bytes": 4, "sha256": "a" * 64}}).encode())

    found = destination.stat(KEY)

    assert found is not None and found.sha256 == sha256_hex(b"12345")


def test_stat_ignores_a_sidecar_older_than_its_file(
    destination: FilesystemDestination, root: Path, downloads: Path
) -> None:
    destination.put(KEY, *asset_file(downloads, b"12345"))
    destination.put_sidecar(KEY, json.dumps({"file": {"bytes": 5, "sha256": "a" * 64}}).encode())
    sidecar_time = (root / (KEY + ".json")).stat().st_mtime_ns
    os.utime(root / KEY, ns=(sidecar_time + 10**9, sidecar_time + 10**9))  # file rewritten later

    found = destination.stat(KEY)

    assert found is not None and found.sha256 == sha256_hex(b"12345")


def test_iter_sidecars_skips_temp_files(destination: FilesystemDestination, root: Path) -> None:
    destination.put_sidecar(KEY, b"{}")
    (root / "shutterstock" / "image" / ".a.jpg.json.syncd-tmp-abc").write_bytes(b"{")
    (root / "shutterstock" / "image" / ".b.syncd-tmp-x.json").write_bytes(b"{")

    assert list(destination.iter_sidecars()) == [(KEY, b"{}")]


def test_check_creates_a_missing_root(destination: FilesystemDestination, root: Path) -> None:
    destination.check()

    assert root.is_dir()
    assert list(root.iterdir()) == []


def test_check_on_an_unwritable_path_names_the_path_key(tmp_path: Path) -> None:
    # Tests run as root, which ignores permission bits; a path below a regular file
    # cannot be created by anyone.
    (tmp_path / "afile").write_bytes(b"")
    unwritable = FilesystemDestination("library", tmp_path / "afile" / "sub")

    with pytest.raises(ConfigError, match="not writable") as failure:
        unwritable.check()

    assert failure.value.key == "destinations.library.path"


def test_put_below_a_regular_file_fails_as_an_item_error(tmp_path: Path, downloads: Path) -> None:
    (tmp_path / "afile").write_bytes(b"")
    unwritable = FilesystemDestination("library", tmp_path / "afile" / "sub")

    with pytest.raises(DestinationError, match="cannot write"):
        unwritable.put(KEY, *asset_file(downloads, b"bytes"))
