"""The built-in sandbox behaves like the Shutterstock API, over real HTTP on loopback."""

from __future__ import annotations

import hashlib
import os
import re
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from syncd.sandbox import Call, FaultRule, Sandbox
from syncd.sandbox.content import BLOCK, GeneratedFile

TOKEN = "sandbox-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def api(sandbox: Sandbox) -> Iterator[httpx.Client]:
    """An authenticated client for the sandbox's /v2 API."""
    with httpx.Client(base_url=sandbox.url, headers=AUTH, timeout=10) as client:
        yield client


def client_for(sandbox: Sandbox) -> httpx.Client:
    return httpx.Client(base_url=sandbox.url, headers=AUTH, timeout=10)


def all_pages(api: httpx.Client, path: str = "/v2/images/licenses", per_page: int = 7) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    page = 1
    while True:
        data = api.get(path, params={"page": page, "per_page": per_page}).json()["data"]
        if not data:
            return items
        items.extend(data)
        page += 1


def redownload_url(api: httpx.Client, license_id: str, kind: str = "images", **body: Any) -> str:
    response = api.post(f"/v2/{kind}/licenses/{license_id}/downloads", json=body or None)
    assert response.status_code == 200, response.text
    return str(response.json()["url"])


def downloadable(sandbox: Sandbox, media_type: str = "image") -> list[dict[str, Any]]:
    return [item for item in sandbox.licenses(media_type) if item["is_downloadable"]]


# --- authentication and headers ---------------------------------------------------------


def test_api_calls_need_the_bearer_token(sandbox: Sandbox) -> None:
    missing = httpx.get(f"{sandbox.url}/v2/images/licenses")
    wrong = httpx.get(f"{sandbox.url}/v2/images/licenses", headers={"Authorization": "Bearer nope"})
    right = httpx.get(f"{sandbox.url}/v2/images/licenses", headers=AUTH)

    assert (missing.status_code, missing.json()) == (401, {"message": "Unauthorized"})
    assert (wrong.status_code, wrong.json()) == (401, {"message": "Unauthorized"})
    assert right.status_code == 200
    assert "RateLimit-Remaining" in missing.headers


def test_api_calls_need_a_user_agent(api: httpx.Client) -> None:
    request = api.build_request("GET", "/v2/images/licenses")
    del request.headers["User-Agent"]

    response = api.send(request)

    assert response.status_code == 400
    assert "User-Agent" in response.json()["message"]


def test_unknown_paths_are_json_404s(api: httpx.Client, sandbox: Sandbox) -> None:
    assert api.get("/v2/nothing/here").status_code == 404
    outside = httpx.get(f"{sandbox.url}/favicon.ico")
    assert outside.status_code == 404 and "message" in outside.json()


# --- license history --------------------------------------------------------------------


def test_history_pages_newest_first_with_total_count(sandbox: Sandbox, api: httpx.Client) -> None:
    first = api.get("/v2/images/licenses", params={"per_page": 7}).json()
    pages = all_pages(api, per_page=7)
    times = [datetime.fromisoformat(item["download_time"].replace("Z", "+00:00")) for item in pages]

    assert (first["page"], first["per_page"], first["total_count"]) == (1, 7, 30)
    assert [item["id"] for item in pages] == [item["id"] for item in sandbox.licenses("image")]
    assert times == sorted(times, reverse=True)
    assert len({item["id"] for item in pages}) == 30
    assert api.get("/v2/images/licenses").json()["per_page"] == 20


def test_history_pages_are_stable_and_sortable(api: httpx.Client) -> None:
    again = [api.get("/v2/images/licenses", params={"page": 2, "per_page": 5}).json()["data"] for _ in range(2)]
    newest = api.get("/v2/images/licenses", params={"per_page": 200}).json()["data"]
    oldest = api.get("/v2/images/licenses", params={"per_page": 200, "sort": "oldest"}).json()["data"]

    assert again[0] == again[1]
    assert oldest == newest[::-1]


def test_history_rejects_bad_paging(api: httpx.Client) -> None:
    assert api.get("/v2/images/licenses", params={"per_page": 201}).status_code == 400
    assert api.get("/v2/images/licenses", params={"page": 0}).status_code == 400
    assert api.get("/v2/images/licenses", params={"page": "x"}).status_code == 400
    assert api.get("/v2/images/licenses", params={"sort": "popular"}).status_code == 400
    assert api.get("/v2/images/licenses", params={"page": 99}).json()["data"] == []


def test_licenses_added_between_pages_shift_items_down_and_none_is_lost(sandbox: Sandbox, api: httpx.Client) -> None:
    original = [item["id"] for item in sandbox.licenses("image")]
    added: list[dict[str, Any]] = []

    def add_after_first_page(call: Call) -> None:
        if call.path == "/v2/images/licenses" and call.query.get("page") == ["1"] and not added:
            added.extend(sandbox.add_licenses(3, media_type="image"))

    sandbox.on_request(add_after_first_page)
    page1 = api.get("/v2/images/licenses", params={"page": 1, "per_page": 10}).json()["data"]
    page2 = api.get("/v2/images/licenses", params={"page": 2, "per_page": 10}).json()
    walked = [item["id"] for item in page1] + [item["id"] for item in all_pages(api, per_page=10)[10:]]

    assert page2["total_count"] == 33
    # The last three of page 1 are pushed onto page 2: seen twice, never skipped.
    assert [item["id"] for item in page2["data"][:3]] == [item["id"] for item in page1[-3:]]
    assert set(original) <= set(walked)
    assert [item["id"] for item in added] == [item["id"] for item in sandbox.licenses("image")[:3]]


def test_history_filters(sandbox: Sandbox, api: httpx.Client) -> None:
    history = sandbox.licenses("image")
    media_id = history[4]["image"]["id"]
    middle = history[15]["download_time"]

    by_media = api.get("/v2/images/licenses", params={"image_id": media_id}).json()["data"]
    not_downloadable = api.get(
        "/v2/images/licenses", params={"download_availability": "non_downloadable", "per_page": 200}
    ).json()["data"]
    since = api.get("/v2/images/licenses", params={"start_date": middle, "per_page": 200}).json()
    until = api.get("/v2/images/licenses", params={"end_date": middle, "per_page": 200}).json()

    assert by_media and all(item["image"]["id"] == media_id for item in by_media)
    assert [item["id"] for item in not_downloadable] == [i["id"] for i in history if not i["is_downloadable"]]
    assert since["total_count"] == 16 and until["total_count"] == 15  # both bounds inclusive
    assert api.get("/v2/images/licenses", params={"start_date": "yesterday"}).status_code == 400


def test_history_items_have_the_documented_shape(sandbox: Sandbox) -> None:
    history = sandbox.licenses("image")
    item = history[0]

    assert set(item) >= {"id", "user", "license", "subscription_id", "download_time", "is_downloadable", "metadata",
                         "image"}
    assert re.fullmatch(r"i\d+", item["id"]) and re.fullmatch(r"\d+", item["image"]["id"])
    assert {i["image"]["format"]["size"] for i in history} <= {"small", "medium", "huge", "supersize", "vector"}
    assert any("format" not in i["image"]["format"] for i in history)  # the real API often omits it
    assert any(i["download_time"].endswith("Z") for i in history)
    assert any(i["download_time"].endswith("-04:00") for i in history)
    assert 0 < sum(not i["is_downloadable"] for i in history) < 10


def test_some_media_are_licensed_twice_in_different_sizes(sandbox: Sandbox) -> None:
    by_media: dict[str, list[str]] = {}
    for item in sandbox.licenses("image"):
        by_media.setdefault(item["image"]["id"], []).append(item["image"]["format"]["size"])
    twice = [sizes for sizes in by_media.values() if len(sizes) > 1]

    assert twice
    assert all(len(set(sizes)) == len(sizes) for sizes in twice)


def test_the_catalogue_is_deterministic_from_the_seed() -> None:
    def snapshot(seed: int) -> list[Any]:
        sandbox = Sandbox(seed=seed, licenses=12, media_types=("image", "video"))
        return [
            (item["id"], item["image"]["id"], item["image"]["format"], sandbox.media(item["image"]["id"]))
            for item in sandbox.licenses("image")
        ]

    assert snapshot(7) == snapshot(7)
    assert snapshot(7) != snapshot(8)


def test_other_media_types_have_their_own_histories() -> None:
    with Sandbox(seed=2, licenses=6, media_types=("image", "video", "audio", "sfx", "editorial")) as sandbox:
        with client_for(sandbox) as client:
            totals = {path: client.get(f"/v2/{path}/licenses").json()["total_count"]
                      for path in ("images", "videos", "audio", "sfx", "editorial/images", "editorial/videos")}
            editorial = client.get("/v2/editorial/images/licenses").json()["data"]
        videos = sandbox.licenses("video")

    assert totals == {"images": 6, "videos": 6, "audio": 6, "sfx": 6, "editorial/images": 6, "editorial/videos": 0}
    assert all(re.fullmatch(r"v\d+", item["id"]) and "video" in item for item in videos)
    assert all(item["is_downloadable"] is False and item["image"]["format"]["size"] == "original" for item in editorial)
    assert all(re.fullmatch(r"\d+[a-z]{2}", item["image"]["id"]) for item in editorial)


# --- media details ----------------------------------------------------------------------


def test_bulk_details_skip_unknown_ids_and_respect_view(sandbox: Sandbox, api: httpx.Client) -> None:
    ids = [item["image"]["id"] for item in sandbox.licenses("image")[:3]]

    minimal = api.get("/v2/images", params={"id": [*ids, "1"]}).json()["data"]
    full = api.get("/v2/images", params={"id": ids, "view": "full"}).json()["data"]

    assert [media["id"] for media in minimal] == ids
    assert "keywords" not in minimal[0] and full[0]["keywords"]
    assert full[0]["assets"]["huge_jpg"]["format"] == "jpg"
    assert {"width", "height", "dpi", "file_size"} <= set(full[0]["assets"]["huge_jpg"])
    assert api.get("/v2/images", params={"id": [str(n) for n in range(501)]}).status_code == 400
    assert api.get("/v2/images").status_code == 400


def test_single_details_and_editorial_country(sandbox: Sandbox, api: httpx.Client) -> None:
    media_id = sandbox.licenses("image")[0]["image"]["id"]

    assert api.get(f"/v2/images/{media_id}").json()["id"] == media_id
    assert api.get("/v2/images/1").status_code == 404
    with Sandbox(seed=1, licenses=2, media_types=("editorial",)) as editorial, client_for(editorial) as client:
        editorial_id = editorial.licenses("editorial")[0]["image"]["id"]
        assert client.get(f"/v2/editorial/images/{editorial_id}").status_code == 400
        assert client.get(f"/v2/editorial/images/{editorial_id}", params={"country": "USA"}).json()["id"] \
                == editorial_id


def test_subscriptions(api: httpx.Client) -> None:
    subscriptions = api.get("/v2/user/subscriptions").json()["data"]

    assert len(subscriptions) == 1
    assert re.fullmatch(r"s\d+", subscriptions[0]["id"]) and subscriptions[0]["asset_type"] == "images"
    assert {"downloads_left", "downloads_limit"} <= set(subscriptions[0]["allotment"])


# --- redownload and download ------------------------------------------------------------


def test_redownloaded_files_are_deterministic_with_correct_headers(sandbox: Sandbox, api: httpx.Client) -> None:
    item = downloadable(sandbox)[0]
    media_id, size = item["image"]["id"], item["image"]["format"]["size"]
    url = redownload_url(api, item["id"])

    first, second = httpx.get(url), httpx.get(redownload_url(api, item["id"]))
    asset = sandbox.media(media_id)["assets"][f"{size}_{'eps' if size == 'vector' else 'jpg'}"]  # type: ignore[index]

    assert url.endswith(f"/shutterstock_{media_id}.{'eps' if size == 'vector' else 'jpg'}")
    assert first.status_code == 200 and first.content == second.content
    assert int(first.headers["Content-Length"]) == len(first.content) == asset["file_size"]
    assert 20 * 1024 <= len(first.content) <= 120 * 1024
    assert first.headers["ETag"] and first.headers["Accept-Ranges"] == "bytes"
    assert first.headers["Content-Type"] in ("image/jpeg", "application/postscript")


def test_the_same_seed_serves_the_same_bytes() -> None:
    digests = []
    for _ in range(2):
        with Sandbox(seed=9, licenses=5) as sandbox, client_for(sandbox) as client:
            item = downloadable(sandbox)[0]
            digests.append(hashlib.sha256(httpx.get(redownload_url(client, item["id"])).content).hexdigest())
    assert digests[0] == digests[1]


@pytest.mark.parametrize(
    ("media_type", "api_path", "size", "extension", "offset", "magic"),
    [
        ("image", "images", "huge", "jpg", 0, b"\xff\xd8\xff\xe0\x00\x10JFIF"),
        ("image", "images", "vector", "eps", 0, b"%!PS-Adobe"),
        ("video", "videos", "sd", "mp4", 4, b"ftypmp42"),
        ("video", "videos", "hd", "mov", 4, b"ftypqt  "),
        ("audio", "audio", "wav", "wav", 0, b"RIFF"),
        ("audio", "audio", "mp3", "mp3", 0, b"ID3"),
        ("sfx", "sfx", "wav", "wav", 8, b"WAVE"),
        ("sfx", "sfx", "mp3", "mp3", 0, b"ID3"),
    ],
)
def test_downloads_start_with_their_format_magic_bytes(
    media_type: str, api_path: str, size: str, extension: str, offset: int, magic: bytes
) -> None:
    with Sandbox(seed=3, licenses=1, media_types=(media_type,)) as sandbox, client_for(sandbox) as client:
        item = sandbox.add_licenses(1, media_type=media_type, size=size)[0]
        url = redownload_url(client, item["id"], kind=api_path)
        body = httpx.get(url).content

    assert url.endswith(f".{extension}")
    assert body[offset:offset + len(magic)] == magic
    if extension == "jpg":
        assert body.endswith(b"\xff\xd9")


def test_range_requests_return_206_slices(sandbox: Sandbox, api: httpx.Client) -> None:
    url = redownload_url(api, downloadable(sandbox)[0]["id"])
    whole = httpx.get(url).content
    length = len(whole)

    middle = httpx.get(url, headers={"Range": "bytes=100-199"})
    tail = httpx.get(url, headers={"Range": "bytes=1000-"})
    suffix = httpx.get(url, headers={"Range": "bytes=-10"})
    beyond = httpx.get(url, headers={"Range": f"bytes={length}-"})

    assert (middle.status_code, middle.content) == (206, whole[100:200])
    assert middle.headers["Content-Range"] == f"bytes 100-199/{length}"
    assert tail.content == whole[1000:] and tail.headers["Content-Length"] == str(length - 1000)
    assert suffix.content == whole[-10:]
    assert beyond.status_code == 416 and beyond.headers["Content-Range"] == f"bytes */{length}"


def test_downloads_need_no_token_and_the_authorization_header_is_recorded(sandbox: Sandbox, api: httpx.Client) -> None:
    url = redownload_url(api, downloadable(sandbox)[0]["id"])

    anonymous = httpx.get(url)
    careless = httpx.get(url, headers=AUTH)
    downloads = [call for call in sandbox.calls if call.path.startswith("/download/")]

    assert anonymous.status_code == careless.status_code == 200
    assert [call.authorization for call in downloads] == [None, f"Bearer {TOKEN}"]
    api_calls = [call for call in sandbox.calls if call.path.startswith("/v2/")]
    assert all(call.authorization == f"Bearer {TOKEN}" for call in api_calls)


def test_expired_and_forged_links_are_refused() -> None:
    with Sandbox(seed=1, licenses=5, url_ttl=0) as sandbox, client_for(sandbox) as client:
        expired = httpx.get(redownload_url(client, downloadable(sandbox)[0]["id"]))
    with Sandbox(seed=1, licenses=5) as sandbox, client_for(sandbox) as client:
        url = redownload_url(client, downloadable(sandbox)[0]["id"])
        token = url.split("/download/")[1].split("/")[0]
        forged = httpx.get(url.replace(token, token[:-2] + ("AA" if not token.endswith("AA") else "BB")))

    assert expired.status_code == 403 and "expired" in expired.json()["message"]
    assert forged.status_code == 403


def test_redownload_refuses_undownloadable_and_unknown_licenses(sandbox: Sandbox, api: httpx.Client) -> None:
    locked = sandbox.add_licenses(1, is_downloadable=False)[0]

    refused = api.post(f"/v2/images/licenses/{locked['id']}/downloads")
    unknown = api.post("/v2/images/licenses/i1/downloads")
    wrong_kind = api.post(f"/v2/videos/licenses/{locked['id']}/downloads")

    assert refused.status_code == 403 and "not downloadable" in refused.json()["message"]
    assert unknown.status_code == wrong_kind.status_code == 404


def test_redownload_in_another_size(sandbox: Sandbox, api: httpx.Client) -> None:
    item = sandbox.add_licenses(1, size="medium")[0]

    url = redownload_url(api, item["id"], size="small")

    assert len(httpx.get(url).content) == sandbox.media(item["image"]["id"])["assets"]["small_jpg"]["file_size"]  # type: ignore[index]
    assert api.post(f"/v2/images/licenses/{item['id']}/downloads", json={"size": "giant"}).status_code == 400


def test_download_host_names_the_same_server() -> None:
    with Sandbox(seed=1, licenses=3, download_host="localhost") as sandbox, client_for(sandbox) as client:
        url = redownload_url(client, downloadable(sandbox)[0]["id"])
        assert url.startswith(f"http://localhost:{sandbox.port}/download/")
        assert httpx.get(url.replace("localhost", "127.0.0.1")).status_code == 200


# --- steering the history ---------------------------------------------------------------


def test_add_licenses_puts_new_licenses_on_top_with_overrides(sandbox: Sandbox, api: httpx.Client) -> None:
    existing = sandbox.licenses("image")[-1]["image"]["id"]

    again = sandbox.add_licenses(1, media_id=existing, size="huge")[0]
    new = sandbox.add_licenses(2, description="A red kite", keywords=["kite"], file_bytes=12345)
    top = api.get("/v2/images/licenses", params={"per_page": 3}).json()["data"]

    assert [item["id"] for item in top] == [new[0]["id"], new[1]["id"], again["id"]]
    assert again["image"]["id"] == existing
    details = api.get(f"/v2/images/{new[0]['image']['id']}").json()
    assert (details["description"], details["keywords"]) == ("A red kite", ["kite"])
    assert len(httpx.get(redownload_url(api, new[0]["id"])).content) == 12345


def test_licenses_arrive_over_time() -> None:
    with Sandbox(seed=1, licenses=2, arrival_interval=0.2) as sandbox, client_for(sandbox) as client:
        time.sleep(0.7)
        total = client.get("/v2/images/licenses").json()["total_count"]
    assert total >= 5


# --- licensing --------------------------------------------------------------------------


def test_licensing_creates_a_new_top_license_and_counts_the_spend(sandbox: Sandbox, api: httpx.Client) -> None:
    subscription = api.get("/v2/user/subscriptions").json()["data"][0]["id"]
    media_id = sandbox.licenses("image")[5]["image"]["id"]

    response = api.post(
        "/v2/images/licenses", params={"subscription_id": subscription, "size": "medium"},
        json={"images": [{"image_id": media_id}]},
    )
    result = response.json()["data"][0]
    top = sandbox.licenses("image")[0]

    assert response.status_code == 200 and sandbox.licensing_calls == 1
    assert result["image_id"] == media_id and result["allotment_charge"] == 1
    assert top["id"] == result["license_id"] and top["image"] == {"id": media_id, "format": top["image"]["format"]}
    assert top["image"]["format"]["size"] == "medium" and top["is_downloadable"] is True
    assert httpx.get(result["download"]["url"]).status_code == 200


def test_licensing_reports_item_errors_and_limits(sandbox: Sandbox, api: httpx.Client) -> None:
    media_id = sandbox.licenses("image")[0]["image"]["id"]

    unknown_subscription = api.post("/v2/images/licenses", params={"subscription_id": "s1"},
                                    json={"images": [{"image_id": media_id}]}).json()["data"][0]
    unknown_media = api.post("/v2/images/licenses", json={"images": [{"image_id": "1"}]}).json()["data"][0]
    too_many = api.post("/v2/images/licenses", json={"images": [{"image_id": media_id}] * 51})

    assert "error" in unknown_subscription and "license_id" not in unknown_subscription
    assert "error" in unknown_media
    assert too_many.status_code == 400
    assert sandbox.licensing_calls == 0 and len(sandbox.licenses("image")) == 30


def test_editorial_licensing_needs_a_country() -> None:
    with Sandbox(seed=1, licenses=3, media_types=("editorial",)) as sandbox, client_for(sandbox) as client:
        editorial_id = sandbox.licenses("editorial")[0]["image"]["id"]
        body = {"editorial": [{"editorial_id": editorial_id, "license": "premier_editorial_comp", "size": "original"}]}

        assert client.post("/v2/editorial/images/licenses", json=body).status_code == 400
        licensed = client.post("/v2/editorial/images/licenses", json={"country": "USA", **body}).json()["data"][0]

        assert licensed["license_id"] == sandbox.licenses("editorial")[0]["id"]
        assert httpx.get(licensed["download"]["url"]).status_code == 200
        assert client.post(f"/v2/images/licenses/{licensed['license_id']}/downloads").status_code == 404


# --- rate limits and faults -------------------------------------------------------------


def test_rate_limit_headers_and_429_until_the_window_renews() -> None:
    with Sandbox(seed=1, licenses=3, rate_limit=(3, 1.0)) as sandbox, client_for(sandbox) as client:
        answers = [client.get("/v2/images/licenses") for _ in range(4)]
        refused = answers[-1]
        time.sleep(max(0.0, int(refused.headers["RateLimit-Reset"]) / 1000 - time.time()) + 0.05)
        renewed = client.get("/v2/images/licenses")

    assert [a.headers["RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    body = refused.json()
    assert body["message"] == "Too many requests" and body["limit"] == 3 and body["remaining"] == 0
    assert body["reset"] == int(refused.headers["RateLimit-Reset"]) > time.time() * 1000 - 2000
    assert renewed.status_code == 200


def test_unlimited_sandboxes_still_report_their_quota(api: httpx.Client) -> None:
    headers = api.get("/v2/images/licenses").headers

    assert int(headers["RateLimit-Limit"]) >= 1000
    assert int(headers["RateLimit-Remaining"]) == int(headers["RateLimit-Limit"]) - 1
    assert int(headers["RateLimit-Reset"]) > time.time() * 1000


def test_status_fault_lets_after_pass_then_fires_times(sandbox: Sandbox, api: httpx.Client) -> None:
    sandbox.faults.add(FaultRule(path=r"^/v2/images/licenses$", method="GET", kind="status", status=503,
                                 after=1, times=2))

    statuses = [api.get("/v2/images/licenses").status_code for _ in range(4)]

    assert statuses == [200, 503, 503, 200]
    assert api.post("/v2/images/licenses", json={}).status_code == 400  # other methods untouched


def test_429_fault_carries_rate_limit_headers_and_body(sandbox: Sandbox, api: httpx.Client) -> None:
    sandbox.faults.add(FaultRule(path=r"/licenses$", kind="429", reset_in=30))

    refused = api.get("/v2/images/licenses")
    reset = int(refused.headers["RateLimit-Reset"])

    assert refused.status_code == 429 and refused.headers["RateLimit-Remaining"] == "0"
    assert 25_000 < reset - time.time() * 1000 <= 30_000
    assert refused.json() == {"message": "Too many requests", "limit": int(refused.headers["RateLimit-Limit"]),
                              "remaining": 0, "reset": reset}
    assert api.get("/v2/images/licenses").status_code == 200


def test_drop_fault_closes_the_connection_without_a_response(sandbox: Sandbox, api: httpx.Client) -> None:
    sandbox.faults.add(FaultRule(path=r"^/v2/images/licenses$", kind="drop"))

    with pytest.raises(httpx.TransportError):
        api.get("/v2/images/licenses")

    assert sandbox.calls[-1].status == 0
    assert api.get("/v2/images/licenses").status_code == 200


def test_truncate_fault_sends_fewer_bytes_than_content_length(sandbox: Sandbox, api: httpx.Client) -> None:
    url = redownload_url(api, downloadable(sandbox)[0]["id"])
    sandbox.faults.add(FaultRule(path=r"^/download/", kind="truncate", fraction=0.25))
    received = bytearray()

    with pytest.raises(httpx.RemoteProtocolError), httpx.stream("GET", url) as response:
        announced = int(response.headers["Content-Length"])
        for piece in response.iter_raw():
            received.extend(piece)

    assert len(received) == int(announced * 0.25) < announced


def test_truncate_nolength_fault_is_only_caught_by_a_size_check(sandbox: Sandbox, api: httpx.Client) -> None:
    item = downloadable(sandbox)[0]
    url = redownload_url(api, item["id"])
    expected = len(httpx.get(url).content)
    sandbox.faults.add(FaultRule(path=r"^/download/", kind="truncate_nolength", fraction=0.5))

    cut = httpx.get(url)

    assert cut.status_code == 200 and "Content-Length" not in cut.headers
    assert len(cut.content) == expected // 2


def test_slow_fault_delays_then_answers(sandbox: Sandbox, api: httpx.Client) -> None:
    sandbox.faults.add(FaultRule(path=r"^/v2/user/subscriptions$", kind="slow", delay=0.3))

    started = time.monotonic()
    response = api.get("/v2/user/subscriptions")

    assert response.status_code == 200 and time.monotonic() - started >= 0.3


def test_faults_can_be_cleared(sandbox: Sandbox, api: httpx.Client) -> None:
    sandbox.faults.add(FaultRule(path=r".", kind="status", status=500, times=-1))
    assert api.get("/v2/user/subscriptions").status_code == 500
    sandbox.faults.clear()
    assert api.get("/v2/user/subscriptions").status_code == 200


def test_calls_are_counted_by_method_and_prefix(sandbox: Sandbox, api: httpx.Client) -> None:
    api.get("/v2/images/licenses")
    api.get("/v2/images/licenses", params={"page": 2})
    api.get("/v2/user/subscriptions")

    assert sandbox.count("GET", "/v2/images/licenses") == 2
    assert sandbox.count("POST", "/v2/images") == 0
    assert sandbox.calls[1].query == {"page": ["2"]} and sandbox.calls[1].status == 200


# --- large files and lifecycle ----------------------------------------------------------


def test_a_50_mb_file_streams_through_with_flat_memory() -> None:
    size = 50 * 1024 * 1024
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with Sandbox(seed=1, licenses=2, file_bytes=size) as sandbox, client_for(sandbox) as client:
        url = redownload_url(client, downloadable(sandbox)[0]["id"])
        digest, received = hashlib.sha256(), 0
        with httpx.stream("GET", url) as response:
            assert int(response.headers["Content-Length"]) == size
            for piece in response.iter_bytes():
                digest.update(piece)
                received += len(piece)
    growth_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before

    assert received == size
    assert growth_kb < 40 * 1024  # far below the file's 50 MB: nothing held whole


def test_generated_content_is_consistent_across_ranges() -> None:
    for fmt in ("jpg", "eps", "mp4", "mov", "wav", "mp3"):
        file = GeneratedFile("k", fmt, 3 * BLOCK + 123)
        whole = file.read()
        assert len(whole) == file.length
        spans = ((0, 5), (BLOCK - 3, BLOCK + 3), (2 * BLOCK, 3 * BLOCK + 123), (file.length - 1, file.length))
        for start, stop in spans:
            assert file.read(start, stop) == whole[start:stop], (fmt, start, stop)
        assert whole[BLOCK:2 * BLOCK] != whole[2 * BLOCK:3 * BLOCK]
    assert GeneratedFile("k", "jpg", 5).read() == b"\xff\xd8\xff\xe0\x00"


def test_stop_closes_kept_alive_connections(sandbox: Sandbox, api: httpx.Client) -> None:
    assert api.get("/v2/user/subscriptions").status_code == 200

    sandbox.stop()

    with pytest.raises(httpx.TransportError):
        api.get("/v2/user/subscriptions")


def test_module_entry_point_serves_until_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "syncd.sandbox", "--port", "0", "--seed", "3", "--licenses", "5"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.fullmatch(r"syncd sandbox listening on (http://127\.0\.0\.1:(\d+)) \(token: sandbox-token\)\n", line)
        assert match, line
        assert int(match.group(2)) > 0
        response = httpx.get(f"{match.group(1)}/v2/images/licenses", headers=AUTH)
        assert response.json()["total_count"] == 5
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
