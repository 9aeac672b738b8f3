"""A spool disk (TMPDIR) too small for a download: the item fails saying where and what to do, the rest syncs.

The spool is a real 2 MiB tmpfs mounted for the test (the suite runs as root, as CI does).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.sandbox import FaultRule, Sandbox
from tests.helpers import library_files, run_syncd, sandbox_config

SPOOL_BYTES = 2 * 1024 * 1024


@pytest.fixture
def small_tmpdir(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB filesystem of its own, for TMPDIR."""
    mount = tmp_path / "small-tmp"
    mount.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SPOOL_BYTES}", "tmpfs", str(mount)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.fail(f"these tests mount a 2 MiB tmpfs and need root with CAP_SYS_ADMIN: {mounted.stderr.strip()}",
                    pytrace=False)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False, capture_output=True)


def _problems(config: Path) -> list[dict[str, str]]:
    return json.loads(run_syncd("status", "--json", config=config).stdout)["problems"]


def test_a_file_larger_than_the_spool_disk_fails_before_its_download(small_tmpdir: Path, tmp_path: Path) -> None:
    with Sandbox(seed=41, licenses=0) as sandbox:
        small = sandbox.add_licenses(3, file_bytes=200 * 1024)
        [large] = sandbox.add_licenses(1, file_bytes=3 * 1024 * 1024)
        config = sandbox_config(tmp_path, sandbox.url)

        result = run_syncd("sync", config=config, env={"TMPDIR": str(small_tmpdir)})

        assert result.code == 1, result.stderr[-3000:]
        assets, _ = library_files(tmp_path / "library")
        assert len(assets) == len(small)  # the others synced
        [problem] = _problems(config)
        assert problem["license_id"] == large["id"]
        assert f"no room to stage the download in {small_tmpdir}" in problem["reason"]
        assert "the file is 3.0 MiB" in problem["reason"] and "TMPDIR" in problem["reason"]
        downloads = [c for c in sandbox.calls if c.path.startswith("/download/")]
        assert len(downloads) == len(small)  # the large file was not fetched at all

        again = run_syncd("sync", config=config)  # with room (the default TMPDIR), the next pass gets it
        assert again.code == 0, again.stderr[-3000:]
        assert len(library_files(tmp_path / "library")[0]) == len(small) + 1


def test_a_spool_disk_filling_up_mid_download_fails_that_item_only(small_tmpdir: Path, tmp_path: Path) -> None:
    with Sandbox(seed=42, licenses=0) as sandbox:
        small = sandbox.add_licenses(2, file_bytes=200 * 1024)
        [large] = sandbox.add_licenses(1, file_bytes=3 * 1024 * 1024)
        # Without details the download's size is known only from its answer: the disk fills mid-way.
        sandbox.faults.add(FaultRule(path=r"^/v2/images$", kind="status", status=503, times=-1))
        # One at a time: a small file downloading beside the large one would meet the full disk too.
        config = sandbox_config(tmp_path, sandbox.url, sync={"concurrency": 1})

        result = run_syncd("sync", config=config, env={"TMPDIR": str(small_tmpdir)})

        assert result.code == 1, result.stderr[-3000:]
        assert len(library_files(tmp_path / "library")[0]) == len(small)
        [problem] = _problems(config)
        assert problem["license_id"] == large["id"]
        assert f"no room to stage the download in {small_tmpdir}" in problem["reason"]
        assert "internal error" not in problem["reason"]
        assert list(small_tmpdir.iterdir()) == []  # the partial download was removed


def test_a_file_larger_than_the_library_disk_fails_before_its_download(small_tmpdir: Path, tmp_path: Path) -> None:
    with Sandbox(seed=43, licenses=0) as sandbox:
        small = sandbox.add_licenses(2, file_bytes=200 * 1024)
        [large] = sandbox.add_licenses(1, file_bytes=3 * 1024 * 1024)
        library = small_tmpdir / "library"
        config = sandbox_config(tmp_path, sandbox.url, destinations=[
            {"name": "library", "kind": "filesystem", "path": str(library)}])

        result = run_syncd("sync", config=config)

        assert result.code == 1, result.stderr[-3000:]
        assert len(library_files(library)[0]) == len(small)
        [problem] = _problems(config)
        assert problem["license_id"] == large["id"]
        assert f"filesystem destination 'library' at {library}" in problem["reason"]
        assert "it is 3.0 MiB and" in problem["reason"] and "is free there" in problem["reason"]
        assert len([c for c in sandbox.calls if c.path.startswith("/download/")]) == len(small)


def test_check_says_where_downloads_are_staged_and_refuses_an_unusable_tmpdir(
        small_tmpdir: Path, tmp_path: Path) -> None:
    with Sandbox(seed=44, licenses=1) as sandbox:
        config = sandbox_config(tmp_path, sandbox.url)

        result = run_syncd("check", config=config, env={"TMPDIR": str(small_tmpdir)})
        assert result.code == 0, result.stderr
        assert f"spool: downloads are staged in {small_tmpdir} (TMPDIR), 2.0 MiB free" in result.stdout

        missing = tmp_path / "no-such-dir"
        refused = run_syncd("check", config=config, env={"TMPDIR": str(missing)})
        assert refused.code == 2
        assert f"TMPDIR: {missing} is missing or not writable" in refused.stderr
