"""The WordPress destination on a real WordPress: metadata, identity, errors a WordPress user meets.

The behaviour it shares with every destination is in test_conformance.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from syncd.destinations.wordpress import WordpressDestination, license_block, merge_description
from syncd.errors import AuthError, ConfigError, DestinationError
from syncd.sandbox.content import GeneratedFile
from tests.destinations import asset_file
from tests.fixtures.wordpress import WordpressSite, wordpress, wordpress_site  # noqa: F401

KEY = "shutterstock/image/1079756147-red-bicycle.jpg"
DOCUMENT: dict[str, Any] = {
    "schema": "syncd.asset/1", "source": "shutterstock", "media_type": "image", "media_id": "1079756147",
    "licenses": [{"id": "i4117504982", "license": "standard", "subscription_id": "s14565368",
                  "username": "jsmith", "licensed_at": "2018-08-31T18:27:10Z", "size": "medium", "format": "jpg"}],
    "description": "Red bicycle leaning on a café wall", "keywords": ["bicycle"], "categories": ["Transportation"],
    "contributor": "1603781", "original_filename": "IMG_8407.jpg", "editorial": False,
    "file": {"key": KEY, "bytes": 0, "sha256": "", "content_type": "image/jpeg"}, "synced_at": "2026-11-30T10:00:00Z",
    "image": {},
}


def _jpeg(name: str = "photo", size: int = 50_000) -> bytes:
    return GeneratedFile(name, "jpg", size).read()


def _encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False, indent=2).encode() + b"\n"


def _with_license(document: dict[str, Any], license_id: str, size: str, when: str) -> dict[str, Any]:
    entry = {**document["licenses"][0], "id": license_id, "size": size, "licensed_at": when}
    return {**document, "licenses": [*document["licenses"], entry]}


@pytest.fixture
def destination(wordpress: WordpressSite) -> Iterator[WordpressDestination]:
    built = WordpressDestination("editors", wordpress.url, wordpress.admin.username, wordpress.admin.password)
    yield built
    built.close()


def _as(site: WordpressSite, role: str, password: str | None = None) -> WordpressDestination:
    user = site.users[role]
    return WordpressDestination("editors", site.url, user.username, password or user.password)


def _attachment(site: WordpressSite, key: str = KEY) -> dict[str, Any]:
    [found] = [a for a in site.attachments() if a["meta"]["syncd_key"] == key]
    return found


# --- metadata ---------------------------------------------------------------------------------


def test_an_asset_becomes_an_attachment_with_title_alt_text_credit_and_licenses(
        destination: WordpressDestination, wordpress: WordpressSite, tmp_path: Path) -> None:
    data = _jpeg()

    destination.put(KEY, *asset_file(tmp_path, data))
    destination.put_sidecar(KEY, _encode(DOCUMENT))

    attachment = _attachment(wordpress)
    assert attachment["title"]["raw"] == "Red bicycle leaning on a café wall"
    assert attachment["alt_text"] == "Red bicycle leaning on a café wall"
    assert attachment["caption"]["raw"] == "Photo: contributor 1603781 / Shutterstock"
    assert "License i4117504982: standard license, medium, licensed 31 Aug 2018" in attachment["description"]["raw"]
    assert attachment["mime_type"] == "image/jpeg"
    assert attachment["source_url"].endswith("/1079756147-red-bicycle.jpg")
    assert wordpress.file_bytes(attachment) == data
    meta = attachment["meta"]
    assert (meta["syncd_source"], meta["syncd_media_type"], meta["syncd_media_id"]) == (
        "shutterstock", "image", "1079756147")


def test_a_later_license_updates_the_description_and_leaves_what_editors_wrote(
        destination: WordpressDestination, wordpress: WordpressSite, tmp_path: Path) -> None:
    destination.put(KEY, *asset_file(tmp_path, _jpeg()))
    destination.put_sidecar(KEY, _encode(DOCUMENT))
    attachment = _attachment(wordpress)
    edited = {"title": "Bike at Café Rouge", "alt_text": "A red bike", "caption": "Photo: J. Doe / Shutterstock",
              "description": "Used on the spring campaign page.\n\n" + attachment["description"]["raw"]}
    with wordpress.client() as client:
        client.post(f"/wp/v2/media/{attachment['id']}", json=edited).raise_for_status()
    second = _with_license(DOCUMENT, "i5000000001", "huge", "2026-11-30T09:00:00Z")

    destination.put_sidecar(KEY, _encode(second))

    after = _attachment(wordpress)
    assert after["id"] == attachment["id"]
    assert (after["title"]["raw"], after["alt_text"], after["caption"]["raw"]) == (
        edited["title"], edited["alt_text"], edited["caption"])
    description = after["description"]["raw"]
    assert description.startswith("Used on the spring campaign page.\n\n")
    assert "License i4117504982: standard license, medium" in description
    assert "License i5000000001: standard license, huge, licensed 30 Nov 2026" in description
    assert description.count("<!-- syncd:licenses -->") == 1
    assert destination.get_sidecar(KEY) == _encode(second)


def test_description_block_is_replaced_in_place() -> None:
    block = license_block(DOCUMENT)
    assert merge_description("", block) == block
    assert merge_description("Notes.", block) == f"Notes.\n\n{block}"
    assert merge_description(f"Before\n{block}\nAfter", license_block({**DOCUMENT, "licenses": []})) == (
        f"Before\n{license_block({**DOCUMENT, 'licenses': []})}\nAfter")


# --- identity -----------------------------------------------------------------------------------


def test_the_same_asset_under_a_new_key_is_the_same_attachment(
        destination: WordpressDestination, wordpress: WordpressSite, tmp_path: Path) -> None:
    data = _jpeg()
    destination.put(KEY, *asset_file(tmp_path, data))
    destination.put_sidecar(KEY, _encode(DOCUMENT))
    renamed = "shutterstock/image/2018/08/1079756147.jpg"  # the naming template changed

    stored = destination.put(renamed, *asset_file(tmp_path, data))

    [attachment] = wordpress.attachments()
    assert attachment["meta"]["syncd_key"] == renamed
    assert destination.stat(KEY) is None
    assert destination.stat(renamed) == stored
    assert destination.get_sidecar(renamed) == _encode(DOCUMENT)


def test_another_size_of_the_same_media_keeps_the_attachment_and_its_file(
        destination: WordpressDestination, wordpress: WordpressSite, tmp_path: Path) -> None:
    medium, huge = _jpeg("medium", 40_000), _jpeg("huge", 90_000)
    first = destination.put(KEY, *asset_file(tmp_path, medium))

    again = destination.put(KEY, *asset_file(tmp_path, huge))

    assert again == first
    [attachment] = wordpress.attachments()
    assert wordpress.file_bytes(attachment) == medium


def test_syncd_meta_is_hidden_from_visitors(
        destination: WordpressDestination, wordpress: WordpressSite, tmp_path: Path) -> None:
    destination.put(KEY, *asset_file(tmp_path, _jpeg()))
    destination.put_sidecar(KEY, _encode(DOCUMENT))

    public = httpx.get(f"{wordpress.url}/wp-json/wp/v2/media", params={"_fields": "id,meta"}).json()
    by_key = httpx.get(f"{wordpress.url}/wp-json/wp/v2/media", params={"syncd_key": KEY}).json()

    assert [a["meta"] for a in public] == [[]]
    assert by_key == []


def test_iter_sidecars_pages_through_the_whole_library(
        destination: WordpressDestination, tmp_path: Path) -> None:
    keys = [f"shutterstock/image/{n}-photo.jpg" for n in range(5)]
    for number, key in enumerate(keys):
        destination.put(key, *asset_file(tmp_path, _jpeg(key, 2000), media_id=str(number)))
        destination.put_sidecar(key, _encode({**DOCUMENT, "media_id": str(number)}))
    destination.page_size = 2

    assert [key for key, _ in destination.iter_sidecars()] == keys
    assert not destination.is_empty()


def test_a_site_without_pretty_permalinks_is_reached_through_rest_route(
        wordpress: WordpressSite, tmp_path: Path) -> None:
    # As Settings > Permalinks > Plain does: no structure, rewrite rules flushed.
    wordpress.sql("UPDATE wp_options SET option_value = '' WHERE option_name = 'permalink_structure'")
    wordpress.sql("DELETE FROM wp_options WHERE option_name = 'rewrite_rules'")
    try:
        plain = _as(wordpress, "admin")
        plain.check()
        plain.put(KEY, *asset_file(tmp_path, _jpeg()))
        plain.put_sidecar(KEY, _encode(DOCUMENT))
        assert plain.get_sidecar(KEY) == _encode(DOCUMENT)
        assert plain._rest_route
    finally:
        wordpress.sql("UPDATE wp_options SET option_value = '/%postname%/' WHERE option_name = 'permalink_structure'")
        wordpress.sql("DELETE FROM wp_options WHERE option_name = 'rewrite_rules'")


def test_an_author_may_sync_its_own_uploads(wordpress: WordpressSite, tmp_path: Path) -> None:
    author = _as(wordpress, "author")
    author.check()
    author.put(KEY, *asset_file(tmp_path, _jpeg()))
    author.put_sidecar(KEY, _encode(DOCUMENT))
    assert author.get_sidecar(KEY) == _encode(DOCUMENT)


# --- errors a WordPress user meets ---------------------------------------------------------------


def test_a_wrong_password_is_an_auth_error_naming_user_site_and_what_to_check(
        wordpress: WordpressSite, tmp_path: Path) -> None:
    wrong = "abcd efgh ijkl mnop qrst uvwx"
    refused = _as(wordpress, "admin", password=wrong)

    with pytest.raises(AuthError) as raised:
        refused.put(KEY, *asset_file(tmp_path, _jpeg()))
    with pytest.raises(AuthError) as checked:
        refused.check()

    for error in (raised.value, checked.value):
        message = str(error)
        assert error.exit_code == 3
        assert "user 'admin'" in message and wordpress.url in message
        assert "WP_ENVIRONMENT_TYPE" in message and "HTTPS" in message
        assert wrong not in message
    assert wordpress.attachments() == []


def test_a_user_who_may_not_upload_is_told_to_get_the_author_role(
        wordpress: WordpressSite, tmp_path: Path) -> None:
    subscriber = _as(wordpress, "subscriber")

    with pytest.raises(DestinationError, match="Author role or higher"):
        subscriber.put(KEY, *asset_file(tmp_path, _jpeg()))
    with pytest.raises(ConfigError, match=r"user 'subscriber' \(role: subscriber\) may not upload files") as checked:
        subscriber.check()
    assert checked.value.key == "destinations.editors.username"


def test_a_file_type_wordpress_refuses_names_the_extension_and_the_fix(
        destination: WordpressDestination, wordpress: WordpressSite, tmp_path: Path) -> None:
    eps = GeneratedFile("vector", "eps", 30_000).read()
    key = "shutterstock/image/1-vector.eps"

    with pytest.raises(DestinationError) as raised:
        destination.put(key, *asset_file(tmp_path, eps, content_type="application/postscript"))

    message = str(raised.value)
    assert "does not accept .eps files" in message
    assert "upload_mimes" in message and "'eps' => 'application/postscript'" in message
    assert wordpress.attachments() == []


def test_without_the_plugin_nothing_is_written(wordpress: WordpressSite, tmp_path: Path) -> None:
    plugin = wordpress.content_dir / "mu-plugins" / "syncd-meta.php"
    aside = plugin.with_suffix(".off")
    plugin.rename(aside)
    try:
        with pytest.raises(ConfigError, match="syncd-meta plugin is not installed") as checked:
            _as(wordpress, "admin").check()
        with pytest.raises(ConfigError, match="deploy/wordpress/syncd-meta.php"):
            _as(wordpress, "admin").put(KEY, *asset_file(tmp_path, _jpeg()))
    finally:
        aside.rename(plugin)
    assert checked.value.exit_code == 2
    assert wordpress.attachments() == []


def test_a_local_file_changed_since_it_was_verified_is_not_uploaded(
        destination: WordpressDestination, wordpress: WordpressSite, tmp_path: Path) -> None:
    path, info = asset_file(tmp_path, _jpeg())
    path.write_bytes(_jpeg("other"))

    with pytest.raises(DestinationError, match="changed since it was verified"):
        destination.put(KEY, path, info)
    assert wordpress.attachments() == []


@pytest.mark.parametrize("url", ["http://wp.example.com", "ftp://127.0.0.1", "http://user:pw@wp.example.com",
                                 "https://wp.example.com/?x=1"])
def test_urls_that_are_refused(url: str) -> None:
    with pytest.raises(ConfigError) as raised:
        WordpressDestination("editors", url, "admin", "secret")
    assert raised.value.key == "destinations.editors.url"
    assert "pw@" not in str(raised.value)


def _replying(status: int, body: dict[str, Any] | str, content_type: str = "application/json") -> WordpressDestination:
    """A destination whose site answers the plugin probe, no lookup results, and ``status`` to uploads."""

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/syncd/v1/status"):
            return httpx.Response(200, json={"plugin": "syncd-meta", "version": "1"})
        if request.method == "GET":
            return httpx.Response(200, json=[], headers={"X-WP-TotalPages": "0"})
        if isinstance(body, str):
            return httpx.Response(status, text=body, headers={"Content-Type": content_type})
        return httpx.Response(status, json=body)

    return WordpressDestination("editors", "https://wp.example.com", "admin", "secret",
                                transport=httpx.MockTransport(handle))


@pytest.mark.parametrize(("status", "body", "expected"), [
    (413, "<html><body><h1>413 Request Entity Too Large</h1></body></html>",
     ["413", "of 50000 bytes", "upload_max_filesize", "post_max_size", "client_max_body_size"]),
    (500, {"code": "rest_upload_unknown_error",
           "message": "The uploaded file exceeds the upload_max_filesize directive in php.ini."},
     ["upload_max_filesize", "post_max_size"]),
    (400, {"code": "rest_upload_no_data", "message": "No data supplied."}, ["post_max_size"]),
    # PHP dropped a form body over post_max_size, so WordPress found no file in it (plugin 1.0: no limits known)
    (400, {"code": "rest_upload_no_content_disposition", "message": "No Content-Disposition supplied."},
     ["post_max_size", "client_max_body_size"]),
    (412, {"code": "rest_upload_hash_mismatch", "message": "Content hash did not match expected."},
     ["changed on the way", "retried"]),
    (502, "<html>Bad Gateway</html>", ["HTTP 502", "Bad Gateway", "retried on a later pass"]),
    (500, {"code": "internal_server_error", "message": "There has been a critical error on this website."},
     ["critical error", "PHP error log", "retried"]),
])
def test_upload_failures_name_the_cause_and_the_fix(
        tmp_path: Path, status: int, body: dict[str, Any] | str, expected: list[str]) -> None:
    destination = _replying(status, body, "text/html")

    with pytest.raises(DestinationError) as raised:
        destination.put(KEY, *asset_file(tmp_path, _jpeg(size=50_000)))

    message = str(raised.value)
    assert message.startswith("WordPress destination 'editors' at https://wp.example.com: cannot upload")
    for part in expected:
        assert part in message
    assert "secret" not in message


def test_an_unreachable_site_fails_the_item_and_check_names_the_url(tmp_path: Path) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    destination = WordpressDestination("editors", "https://wp.example.com", "admin", "secret",
                                       transport=httpx.MockTransport(refuse))
    with pytest.raises(DestinationError, match="cannot reach the site|no answer from the site"):
        destination.put(KEY, *asset_file(tmp_path, _jpeg()))
    with pytest.raises(ConfigError) as checked:
        destination.check()
    assert checked.value.key == "destinations.editors.url"
