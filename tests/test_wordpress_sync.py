"""Syncing into a real WordPress media library (Debian's WordPress on PHP's server, MariaDB)."""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from syncd.sandbox import Sandbox
from syncd.state import StateStore
from tests.fixtures.wordpress import WordpressSite, wordpress, wordpress_site  # noqa: F401
from tests.helpers import library_files, lose_state, run_syncd, sandbox_config

PASSWORD_ENV = "WP_APP_PASSWORD"


def _wordpress_destination(site: WordpressSite) -> dict[str, str]:
    return {"name": "wp", "kind": "wordpress", "url": site.url, "username": site.admin.username,
            "password_env": PASSWORD_ENV}


def _config(tmp_path: Path, sandbox: Sandbox, site: WordpressSite, *extra: dict[str, Any]) -> Path:
    return sandbox_config(tmp_path, sandbox.url, destinations=[_wordpress_destination(site), *extra])


def _sync(config: Path, site: WordpressSite, *args: str, password: str | None = None) -> Any:
    return run_syncd(*args or ("sync",), config=config, env={PASSWORD_ENV: password or site.admin.password})


def _media_ids(sandbox: Sandbox) -> set[str]:
    """The media syncd can fetch (the sandbox also lists licenses that are not re-downloadable)."""
    return {str(lic["image"]["id"]) for lic in sandbox.licenses("image") if lic.get("is_downloadable", True)}


def _by_media_id(site: WordpressSite) -> dict[str, dict[str, Any]]:
    attachments = site.attachments()
    by_media = {a["meta"]["syncd_media_id"]: a for a in attachments}
    assert len(by_media) == len(attachments), "one attachment per asset"
    return by_media


def _downloads(sandbox: Sandbox, since: int = 0) -> int:
    return sum(1 for call in sandbox.calls[since:] if call.path.startswith("/download/"))


def test_a_sync_lands_one_attachment_per_asset_with_its_metadata(
        sandbox: Sandbox, wordpress: WordpressSite, tmp_path: Path) -> None:
    result = _sync(_config(tmp_path, sandbox, wordpress), wordpress)

    assert result.code == 0, result.stderr
    attachments = _by_media_id(wordpress)
    assert set(attachments) == _media_ids(sandbox)
    for media_id, attachment in attachments.items():
        details = sandbox.media(media_id)
        assert details is not None
        meta = attachment["meta"]
        document = json.loads(meta["syncd_sidecar"])
        assert (meta["syncd_source"], meta["syncd_media_type"]) == ("shutterstock", "image")
        assert meta["syncd_key"] == document["file"]["key"]
        assert meta["syncd_key"].startswith(f"shutterstock/image/{media_id}-")
        assert meta["syncd_sha256"] == document["file"]["sha256"]
        assert meta["syncd_bytes"] == document["file"]["bytes"] == len(wordpress.file_bytes(attachment))
        assert attachment["mime_type"] == "image/jpeg"
        title = attachment["title"]["raw"]  # the description, shortened to a title's length
        assert title == details["description"] or details["description"].startswith(title.removesuffix("…"))
        assert attachment["alt_text"] == details["description"]
        assert attachment["caption"]["raw"] == f"Photo: contributor {details['contributor']['id']} / Shutterstock"
        description = attachment["description"]["raw"]
        for entry in document["licenses"]:
            assert f"License {entry['id']}: {entry['license']} license, {entry['size']}, licensed " in description


def test_a_rerun_adds_nothing(sandbox: Sandbox, wordpress: WordpressSite, tmp_path: Path) -> None:
    config = _config(tmp_path, sandbox, wordpress)
    assert _sync(config, wordpress).code == 0
    before = {a["id"]: a["modified_gmt"] for a in wordpress.attachments()}
    calls = len(sandbox.calls)

    assert _sync(config, wordpress).code == 0
    lose_state(tmp_path)  # even with the state lost, the library is recognised
    result = _sync(config, wordpress)

    assert result.code == 0, result.stderr
    assert {a["id"]: a["modified_gmt"] for a in wordpress.attachments()} == before
    assert _downloads(sandbox, calls) == 0


def test_a_second_license_updates_the_same_attachment(
        sandbox: Sandbox, wordpress: WordpressSite, tmp_path: Path) -> None:
    config = _config(tmp_path, sandbox, wordpress)
    assert _sync(config, wordpress).code == 0
    medium = next(lic for lic in sandbox.licenses("image")
                  if lic["image"]["format"]["size"] == "medium" and lic.get("is_downloadable", True))
    media_id = str(medium["image"]["id"])
    before = _by_media_id(wordpress)
    first_file = wordpress.file_bytes(before[media_id])
    again = sandbox.add_licenses(1, media_id=media_id, size="huge")[0]

    result = _sync(config, wordpress)

    assert result.code == 0, result.stderr
    after = _by_media_id(wordpress)
    assert set(after) == set(before)
    attachment = after[media_id]
    assert attachment["id"] == before[media_id]["id"]
    assert wordpress.file_bytes(attachment) == first_file  # an attachment keeps its file for good
    description = attachment["description"]["raw"]
    assert f"License {medium['id']}: standard license, medium" in description
    assert f"License {again['id']}: standard license, huge" in description
    listed = [entry["id"] for entry in json.loads(attachment["meta"]["syncd_sidecar"])["licenses"]]
    assert sorted(listed) == sorted([medium["id"], again["id"]])
    assert attachment["title"]["raw"] == before[media_id]["title"]["raw"]


def test_a_wrong_password_exits_3_and_names_what_to_check(
        sandbox: Sandbox, wordpress: WordpressSite, tmp_path: Path) -> None:
    wrong = "abcd EFGH ijkl MNOP qrst UVWX"
    result = _sync(_config(tmp_path, sandbox, wordpress), wordpress, password=wrong)

    assert result.code == 3, result.stderr
    assert "user 'admin'" in result.stderr and wordpress.url in result.stderr
    assert "Application Password" in result.stderr
    assert wrong not in result.stdout + result.stderr
    assert wordpress.attachments() == []


def test_a_disallowed_file_type_fails_that_item_only(
        sandbox: Sandbox, wordpress: WordpressSite, tmp_path: Path) -> None:
    vector = sandbox.add_licenses(1, size="vector")[0]
    config = _config(tmp_path, sandbox, wordpress)

    result = _sync(config, wordpress)

    assert result.code == 1, result.stderr
    attachments = _by_media_id(wordpress)
    assert set(attachments) == _media_ids(sandbox) - {str(vector["image"]["id"])}
    status = json.loads(run_syncd("status", "--json", config=config).stdout)
    [problem] = [p for p in status["problems"] if p["state"] != "skipped"]  # the not re-downloadable ones
    assert problem["license_id"] == vector["id"]  # queued again for the next pass, until max_attempts
    assert ".eps files" in problem["reason"] and "upload_mimes" in problem["reason"]


def test_filesystem_and_wordpress_both_get_every_asset(
        sandbox: Sandbox, wordpress: WordpressSite, tmp_path: Path) -> None:
    library = {"name": "library", "kind": "filesystem", "path": str(tmp_path / "library")}

    result = _sync(_config(tmp_path, sandbox, wordpress, library), wordpress)

    assert result.code == 0, result.stderr
    assets, _ = library_files(tmp_path / "library")
    keys = {a["meta"]["syncd_key"] for a in wordpress.attachments()}
    assert keys == {asset.relative_to(tmp_path / "library").as_posix() for asset in assets}
    assert len(keys) == len(_media_ids(sandbox)) == _downloads(sandbox)  # downloaded once, stored twice


def test_rebuild_state_from_the_media_library(sandbox: Sandbox, wordpress: WordpressSite, tmp_path: Path) -> None:
    config = _config(tmp_path, sandbox, wordpress)
    assert _sync(config, wordpress).code == 0
    synced = StateStore(f"sqlite:///{tmp_path / 'state.db'}").status_counts()["synced"]
    before = {a["id"]: a["modified_gmt"] for a in wordpress.attachments()}
    lose_state(tmp_path)

    rebuilt = _sync(config, wordpress, "rebuild-state", "--destination", "wp")

    assert rebuilt.code == 0, rebuilt.stderr
    assert StateStore(f"sqlite:///{tmp_path / 'state.db'}").status_counts()["synced"] == synced
    calls = len(sandbox.calls)
    assert _sync(config, wordpress).code == 0
    assert _downloads(sandbox, calls) == 0
    assert {a["id"]: a["modified_gmt"] for a in wordpress.attachments()} == before


def test_check_verifies_the_password_and_the_upload_capability(
        sandbox: Sandbox, wordpress: WordpressSite, tmp_path: Path) -> None:
    config = _config(tmp_path, sandbox, wordpress)

    result = _sync(config, wordpress, "check")

    assert result.code == 0, result.stderr
    assert ("destination wp (wordpress) is writable; it accepts form uploads up to 511.8 MiB (536608768 bytes), "
            "larger ones up to 976.0 MiB (1023410176 bytes) as raw bodies (PHP memory_limit)") in result.stdout
    assert wordpress.attachments() == []
    refused = _sync(config, wordpress, "check", password="not-the-password")
    assert refused.code == 3
    assert "Application Password of user 'admin'" in refused.stderr
    assert "not-the-password" not in refused.stdout + refused.stderr


def test_a_track_with_stems_is_one_attachment_and_the_library_copy_keeps_the_archive(
        wordpress: WordpressSite, tmp_path: Path) -> None:
    with Sandbox(seed=91, licenses=0, media_types=("audio",)) as audio:
        track = audio.add_licenses(1, media_type="audio", stems_bytes=256 * 1024)[0]
        library = {"name": "library", "kind": "filesystem", "path": str(tmp_path / "library")}
        config = sandbox_config(tmp_path, audio.url, source={"media": ["audio"]},
                                destinations=[_wordpress_destination(wordpress), library])
        result = _sync(config, wordpress)
        assert result.code == 0, result.stderr[-2000:]
    attachments = _by_media_id(wordpress)
    assert list(attachments) == [track["audio"]["id"]]  # the archive is not a second attachment
    attachment = attachments[track["audio"]["id"]]
    assert attachment["mime_type"].startswith("audio/")
    assert "shorts_loops_stems" not in json.loads(attachment["meta"]["syncd_sidecar"])["audio"]
    assets, sidecars = library_files(tmp_path / "library")
    assert len(assets) == 2 and len(sidecars) == 1  # the filesystem keeps the track and its archive
    entry = json.loads(sidecars[0].read_text())["audio"]["shorts_loops_stems"]
    assert (tmp_path / "library" / entry["key"]).stat().st_size == entry["bytes"] == 256 * 1024


def test_an_upload_that_loses_the_month_folder_race_is_sent_again(
        sandbox: Sandbox, wordpress: WordpressSite, tmp_path: Path) -> None:
    # Concurrent first uploads of a month race to create uploads/YYYY/MM; the loser gets a 500
    # although the folder exists a moment later (a clean-clone CI run failed on it).
    with wordpress.upload_folder_faults(3) as served:
        result = _sync(_config(tmp_path, sandbox, wordpress), wordpress)
        assert served() == 3

    assert result.code == 0, result.stderr[-3000:]
    assert set(_by_media_id(wordpress)) == _media_ids(sandbox)  # every asset, none twice


def test_an_uploads_folder_wordpress_cannot_create_fails_the_items_with_the_fix(
        sandbox: Sandbox, wordpress: WordpressSite, tmp_path: Path) -> None:
    config = _config(tmp_path, sandbox, wordpress)
    with wordpress.upload_folder_faults(10_000) as served:
        result = _sync(config, wordpress)
        assert served() >= 4  # each item was tried more than once

    assert result.code == 1
    assert wordpress.attachments() == []
    status = json.loads(run_syncd("status", "--json", config=config).stdout)
    failed = [p for p in status["problems"] if p["state"] != "skipped"]
    assert {p["media_id"] for p in failed} == _media_ids(sandbox)  # all queued for the next pass
    assert all("make wp-content/uploads writable by the web server's user" in p["reason"] for p in failed)

    assert _sync(config, wordpress).code == 0  # once WordPress can write again, the next pass lands all
    assert set(_by_media_id(wordpress)) == _media_ids(sandbox)


def test_a_first_sync_into_an_empty_library_sends_one_request_per_asset(
        sandbox: Sandbox, wordpress: WordpressSite, tmp_path: Path) -> None:
    # This month's folder exists, as it does after a site's first upload of the month: the race
    # to create it (an upload sent again) has its own test.
    (wordpress.content_dir / "uploads" / time.strftime("%Y/%m", time.gmtime())).mkdir(parents=True, exist_ok=True)
    before = len(wordpress.requests())

    result = _sync(_config(tmp_path, sandbox, wordpress), wordpress)

    assert result.code == 0, result.stderr[-3000:]
    requests = wordpress.requests()[before:]
    uploads = [r for r in requests if r.startswith("POST /wp-json/wp/v2/media?")]
    assert len(uploads) == len(_media_ids(sandbox))
    # The state started empty and so did the library: no asset is looked up before its upload,
    # and the upload carries the sidecar and metadata, so no attachment is written twice.
    assert not [r for r in requests if "syncd_asset=" in r or "syncd_key=" in r]
    assert not [r for r in requests if re.match(r"POST /wp-json/wp/v2/media/\d+", r)]


def test_a_file_larger_than_php_memory_limit_uploads(tmp_path: Path) -> None:
    # WordPress reads a raw request body into one PHP string, so a raw upload is bounded by
    # memory_limit; a form upload is spooled to disk by PHP, as the media screen's uploads are.
    small_memory = {"upload_max_filesize": "256M", "post_max_size": "256M", "memory_limit": "64M"}
    size = 96 * 1024 * 1024
    with WordpressSite(tmp_path / "site", php_settings=small_memory) as site, \
            Sandbox(seed=5, licenses=0, media_types=("audio",)) as audio:
        track = audio.add_licenses(1, media_type="audio", file_bytes=size)[0]
        config = sandbox_config(tmp_path, audio.url, source={"media": ["audio"]},
                                destinations=[_wordpress_destination(site)])
        result = _sync(config, site)

        assert result.code == 0, result.stderr[-3000:]
        [attachment] = site.attachments()
        assert attachment["meta"]["syncd_media_id"] == track["audio"]["id"]
        assert int(attachment["meta"]["syncd_bytes"]) == size
        stored = site.content_dir / attachment["source_url"].split("/wp-content/", 1)[1]
        assert stored.stat().st_size == size


@contextlib.contextmanager
def _small_and_large_image(tmp_path: Path, php_settings: dict[str, str]) -> Iterator[tuple[Any, ...]]:
    """A site with these PHP settings, a sandbox licensing a 300 KB and (newer) a 3 MB image, and one sync."""
    with WordpressSite(tmp_path / "site", php_settings=php_settings) as site, \
            Sandbox(seed=6, licenses=0, media_types=("image",)) as images:
        images.add_licenses(1, file_bytes=300 * 1024)
        images.add_licenses(1, file_bytes=3 * 1024 * 1024)
        config = sandbox_config(tmp_path, images.url, destinations=[_wordpress_destination(site)])
        yield site, images, config, _sync(config, site)


def test_a_file_over_php_form_limits_goes_as_a_raw_body_when_memory_allows(tmp_path: Path) -> None:
    # Debian's php.ini has upload_max_filesize = 2M: stock images are larger, and such sites
    # took them as raw bodies before syncd used form uploads.
    limits = {"upload_max_filesize": "1M", "post_max_size": "8M", "memory_limit": "128M"}
    with _small_and_large_image(tmp_path, limits) as (site, images, config, result):
        small, large = images.licenses("image")[1], images.licenses("image")[0]
        assert result.code == 0, result.stderr[-3000:]
        attachments = _by_media_id(site)
        assert set(attachments) == {str(small["image"]["id"]), str(large["image"]["id"])}
        large_attachment = attachments[str(large["image"]["id"])]
        assert len(site.file_bytes(large_attachment)) == 3 * 1024 * 1024
        assert json.loads(large_attachment["meta"]["syncd_sidecar"])["media_id"] == str(large["image"]["id"])
        assert large_attachment["caption"]["raw"].endswith("/ Shutterstock")
        uploads = [r for r in site.requests() if r.startswith("POST /wp-json/wp/v2/media")]
        raw = [r for r in uploads if "syncd_key" in r]  # a raw body's identity rides in the query string
        assert len(raw) == 1 and str(large["image"]["id"]) in raw[0]
        assert len(uploads) == 3  # the small one's form upload; the large one's raw upload and its metadata


def test_a_file_over_every_php_limit_is_refused_naming_the_settings_and_not_downloaded(tmp_path: Path) -> None:
    limits = {"upload_max_filesize": "1M", "post_max_size": "1M", "memory_limit": "40M"}
    with _small_and_large_image(tmp_path, limits) as (site, images, config, result):
        small, large = images.licenses("image")[1], images.licenses("image")[0]
        assert result.code == 1, result.stderr[-3000:]
        assert [a["meta"]["syncd_media_id"] for a in site.attachments()] == [str(small["image"]["id"])]
        status = json.loads(run_syncd("status", "--json", config=config).stdout)
        [problem] = status["problems"]
        assert problem["license_id"] == large["id"]
        for named in ("upload_max_filesize = 1.0 MiB", "post_max_size = 1.0 MiB", "memory_limit = 40.0 MiB",
                      "client_max_body_size"):
            assert named in problem["reason"]
        assert _downloads(images) == 1  # the details gave its size: the large file was not even downloaded
