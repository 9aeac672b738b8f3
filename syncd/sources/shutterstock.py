"""Shutterstock: license history per media type, bulk details, redownload.

Every media type is one row of ``MEDIA_KINDS`` (paths, the history item's media key, sizes);
the code below is the same for all of them.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import structlog

from syncd import USER_AGENT
from syncd.config import ShutterstockSourceConfig, read_secret
from syncd.errors import (
    AuthError,
    ConfigError,
    DownloadRefused,
    ItemFailed,
    ItemSkipped,
    OutcomeUnknown,
    TransientError,
)
from syncd.http import TIMEOUT, ApiClient, RateGate, is_loopback
from syncd.records import HistoryPage, LicenseRecord
from syncd.sources.base import Relicensed, RelicensePolicy, Source

log = structlog.get_logger("syncd.shutterstock")

PER_PAGE = 200  # the API's maximum: fewest list calls per license
DETAILS_BATCH = 200  # ids per bulk details call (the API allows 500; shorter URLs are kinder to proxies)
MAX_REDIRECTS = 5
LINK_LIFETIME = 7.5 * 3600  # seconds; redownload links last 8 hours
# Files a redownload answer may offer besides ``url``, stored next to the asset (seed 003: audio).
COMPANIONS = ("shorts_loops_stems",)
OFFERED_KEPT = 1024


@dataclass(frozen=True)
class MediaKind:
    """How one Shutterstock media type is listed, described and re-downloaded."""

    media_type: str
    history_path: str
    item_key: str  # the history item's key holding {id, format}
    details_path: str | None  # bulk details (``?id=…&id=…``)
    redownload_path: str | None  # None: no redownload endpoint (editorial)
    sizes: tuple[str, ...]  # smallest to largest
    sends_size: bool  # the redownload body names the licensed size
    licensing_list: str  # the licensing body's list key ("images", "editorial" …)
    licensing_id: str  # the id field of a licensing item ("image_id", "editorial_id" …)

    @property
    def editorial(self) -> bool:
        return self.media_type.startswith("editorial")


MEDIA_KINDS: dict[str, MediaKind] = {
    kind.media_type: kind
    for kind in (
        MediaKind("image", "/v2/images/licenses", "image", "/v2/images",
                  "/v2/images/licenses/{license_id}/downloads",
                  ("small", "medium", "huge", "supersize", "vector"), True, "images", "image_id"),
        MediaKind("video", "/v2/videos/licenses", "video", "/v2/videos",
                  "/v2/videos/licenses/{license_id}/downloads", ("web", "sd", "hd", "4k"), True,
                  "videos", "video_id"),
        MediaKind("audio", "/v2/audio/licenses", "audio", "/v2/audio",
                  "/v2/audio/licenses/{license_id}/downloads", (), False, "audio", "audio_id"),
        MediaKind("sfx", "/v2/sfx/licenses", "sfx", "/v2/sfx",
                  "/v2/sfx/licenses/{license_id}/downloads", (), False, "sound_effects", "sfx_id"),
        MediaKind("editorial_image", "/v2/editorial/images/licenses", "image", None, None,
                  ("small", "medium", "original"), False, "editorial", "editorial_id"),
        MediaKind("editorial_video", "/v2/editorial/videos/licenses", "video", None, None,
                  ("web", "sd", "hd", "original"), False, "editorial", "editorial_id"),
    )
}
# ``media = ["editorial"]`` in the config covers both editorial kinds.
CONFIG_MEDIA = {
    "image": ["image"], "video": ["video"], "audio": ["audio"], "sfx": ["sfx"],
    "editorial": ["editorial_image", "editorial_video"],
}
_MEDIA_KEYS = ("image", "video", "audio", "sfx", "sound_effect")


class ShutterstockSource(Source):
    """One Shutterstock account's license history."""

    kind = "shutterstock"

    def __init__(self, config: ShutterstockSourceConfig, gate: RateGate, key_prefix: str = "sources") -> None:
        super().__init__(config.name)
        self.config = config
        self.key_prefix = key_prefix
        api = urlsplit(config.base_url)
        if api.scheme not in ("https", "http") or not api.hostname:
            raise ConfigError(f"not a URL: {config.base_url!r}", key=f"{key_prefix}.base_url")
        if api.scheme == "http" and not is_loopback(api.hostname):
            raise ConfigError("plain http is allowed only to loopback; use https", key=f"{key_prefix}.base_url")
        self.api_host = api.hostname
        self.allowed_hosts = {api.hostname, *config.download_hosts}
        token = read_secret(config.token_env, config.token_file, f"source {config.name!r} token")
        self._token_hint = f"the variable {config.token_env}" if config.token_env else f"the file {config.token_file}"
        self.api = ApiClient(config.base_url, {"Authorization": f"Bearer {token}"}, gate)
        # License id -> (when, companion links), newest last. Needed only between a redownload
        # call and the companion's download, so a few entries per worker thread are in use; the
        # cap keeps a long-running worker's memory flat (an evicted entry costs one API call).
        self._offered: OrderedDict[str, tuple[float, dict[str, str]]] = OrderedDict()
        self._offered_lock = threading.Lock()
        # Downloads get their own client: it never carries the API token.
        self._downloads = httpx.Client(headers={"User-Agent": USER_AGENT}, timeout=TIMEOUT, follow_redirects=False,
                                       limits=httpx.Limits(max_connections=64, max_keepalive_connections=32))

    @property
    def media_types(self) -> list[str]:
        return [kind for name in self.config.media for kind in CONFIG_MEDIA[name]]

    # --- the API ---------------------------------------------------------------------------

    def _get_json(self, path: str, params: Any = None) -> dict[str, Any]:
        response = self.api.request("GET", path, params=params)
        self._raise_for_auth(response)
        if response.status_code != 200:
            raise TransientError(f"GET {path}: HTTP {response.status_code}: {_message(response)}")
        body = response.json()
        if not isinstance(body, dict):
            raise TransientError(f"GET {path}: unexpected response shape")
        return body

    def _raise_for_auth(self, response: httpx.Response) -> None:
        if response.status_code == 401:
            raise AuthError(
                f"Shutterstock refused the token of source {self.name!r} (HTTP 401: {_message(response)}). "
                f"Check that {self._token_hint} holds a current OAuth access token for {self.config.base_url}."
            )

    def history(self, media_type: str, *, since: datetime | None = None, until: datetime | None = None) -> Iterator[HistoryPage]:
        kind = MEDIA_KINDS[media_type]
        page = 1
        while True:
            params: dict[str, Any] = {"sort": "newest", "per_page": PER_PAGE, "page": page}
            if since:
                params["start_date"] = since.date().isoformat()
            if until:
                params["end_date"] = until.date().isoformat()
            body = self._get_json(kind.history_path, params)
            if body.get("errors") and not body.get("data"):
                raise TransientError(f"GET {kind.history_path}: {body['errors']}")
            items = body.get("data") or []
            records = [record for item in items if (record := self._record(kind, item)) is not None]
            total = body.get("total_count")
            yield HistoryPage(records=records, page=page, total_count=total if isinstance(total, int) else None)
            if len(items) < PER_PAGE or (isinstance(total, int) and page * PER_PAGE >= total):
                return
            page += 1

    def _record(self, kind: MediaKind, item: dict[str, Any]) -> LicenseRecord | None:
        media = next((item[key] for key in (kind.item_key, *_MEDIA_KEYS) if isinstance(item.get(key), dict)), None)
        try:
            licensed_at = datetime.fromisoformat(str(item["download_time"]).replace("Z", "+00:00"))
            license_id = str(item["id"])
            media_id = str(media["id"]) if media else ""
        except (KeyError, ValueError, TypeError):
            log.warning("history_item_unreadable", source=self.name, media_type=kind.media_type, item_id=item.get("id"))
            return None
        if not media_id:
            log.warning("history_item_without_media", source=self.name, license_id=license_id)
            return None
        file_format = (media or {}).get("format") or {}
        downloadable = item.get("is_downloadable")
        return LicenseRecord(
            source=self.name,
            media_type=kind.media_type,
            license_id=license_id,
            media_id=media_id,
            licensed_at=licensed_at,
            license=item.get("license"),
            size=file_format.get("size"),
            format=file_format.get("format"),
            subscription_id=item.get("subscription_id"),
            username=(item.get("user") or {}).get("username"),
            is_downloadable=downloadable if isinstance(downloadable, bool) else None,
            record=item,
        )

    def details(self, media_type: str, media_ids: list[str]) -> dict[str, dict[str, Any]]:
        kind = MEDIA_KINDS[media_type]
        found: dict[str, dict[str, Any]] = {}
        if kind.editorial:
            return self._editorial_details(kind, media_ids)
        if kind.details_path is None:
            return found
        unique = list(dict.fromkeys(media_ids))
        for start in range(0, len(unique), DETAILS_BATCH):
            batch = unique[start : start + DETAILS_BATCH]
            body = self._get_json(kind.details_path, [("id", media_id) for media_id in batch] + [("view", "full")])
            for entry in body.get("data") or []:
                if isinstance(entry, dict) and "id" in entry:
                    found[str(entry["id"])] = entry
        return found

    def _editorial_details(self, kind: MediaKind, media_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Editorial media have no bulk endpoint: one call each (they are few), country required."""
        path = "/v2/editorial/images/{id}" if kind.media_type == "editorial_image" else "/v2/editorial/videos/{id}"
        found: dict[str, dict[str, Any]] = {}
        for media_id in dict.fromkeys(media_ids):
            response = self.api.request("GET", path.format(id=media_id), params={"country": self.config.editorial_country})
            self._raise_for_auth(response)
            if response.status_code == 200 and isinstance(body := response.json(), dict):
                entry = body.get("data", body) if isinstance(body.get("data"), dict) else body
                found[media_id] = entry
        return found

    # --- files -----------------------------------------------------------------------------

    def can_redownload(self, media_type: str) -> bool:
        return MEDIA_KINDS[media_type].redownload_path is not None

    def can_relicense(self, media_type: str) -> bool:
        return self.config.relicense

    def size_rank(self, media_type: str, size: str | None) -> int:
        sizes = MEDIA_KINDS[media_type].sizes
        return sizes.index(size) if size in sizes else -1

    def _asset(self, license: LicenseRecord, details: dict[str, Any] | None) -> dict[str, Any]:
        assets = (details or {}).get("assets") or {}
        for name, asset in assets.items():
            # Images name assets "huge_jpg"; videos name them by size alone ("hd", "4k").
            if isinstance(asset, dict) and license.size and (name == license.size or name.startswith(f"{license.size}_")):
                return asset
        return {}

    def expected_bytes(self, license: LicenseRecord, details: dict[str, Any] | None) -> int | None:
        size = self._asset(license, details).get("file_size")
        return size if isinstance(size, int) and size > 0 else None

    def extension(self, license: LicenseRecord, details: dict[str, Any] | None) -> str | None:
        return license.format or self._asset(license, details).get("format")

    def _download_url(self, license: LicenseRecord) -> str:
        kind = MEDIA_KINDS[license.media_type]
        if kind.redownload_path is None:
            raise ItemSkipped(f"{license.media_type} media have no redownload endpoint and re-licensing is off")
        if license.is_downloadable is False:
            raise ItemSkipped("the license is not re-downloadable (is_downloadable: false) and re-licensing is off")
        path = kind.redownload_path.format(license_id=license.license_id)
        body = {"size": license.size} if kind.sends_size and license.size else None
        response = self.api.request("POST", path, json=body)
        self._raise_for_auth(response)
        if response.status_code in (403, 404, 410):
            raise ItemFailed(f"redownload of {license.license_id} refused: HTTP {response.status_code}: {_message(response)}")
        if response.status_code >= 400:
            raise ItemFailed(f"redownload of {license.license_id}: HTTP {response.status_code}: {_message(response)}")
        answer = response.json() or {}
        url = answer.get("url")
        if not isinstance(url, str) or not url:
            raise TransientError(f"redownload of {license.license_id}: the response has no url")
        offered = {name: answer[name] for name in COMPANIONS
                   if isinstance(answer.get(name), str) and answer[name]}
        with self._offered_lock:
            if offered:  # most licenses offer none
                self._offered[license.license_id] = (time.monotonic(), offered)
                self._offered.move_to_end(license.license_id)
                while len(self._offered) > OFFERED_KEPT:
                    self._offered.popitem(last=False)
            else:
                self._offered.pop(license.license_id, None)
        return url

    def companions(self, license: LicenseRecord) -> list[str]:
        return sorted(self._offered.get(license.license_id, (0.0, {}))[1])

    def open_companion(self, license: LicenseRecord, name: str, headers: dict[str, str] | None = None,
                       fresh: bool = False) -> AbstractContextManager[httpx.Response]:
        at, offered = self._offered.get(license.license_id, (0.0, {}))
        if fresh or name not in offered or time.monotonic() - at > LINK_LIFETIME:
            self._download_url(license)
            at, offered = self._offered.get(license.license_id, (0.0, {}))
        if name not in offered:
            raise ItemFailed(f"redownload of {license.license_id} no longer offers its {name}")
        return self.open_url(offered[name], f"{license.license_id} {name}", headers)

    def open_download(self, license: LicenseRecord,
                      headers: dict[str, str] | None = None) -> AbstractContextManager[httpx.Response]:
        return self.open_url(self._download_url(license), license.license_id, headers)

    @contextmanager
    def open_url(self, url: str, label: str, headers: dict[str, str] | None = None) -> Iterator[httpx.Response]:
        """Stream ``url`` without the API token, following redirects only to allowed hosts."""
        for _ in range(MAX_REDIRECTS + 1):
            self._check_download_url(url)
            request = self._downloads.build_request("GET", url, headers=headers)
            try:
                response = self._downloads.send(request, stream=True)
            except httpx.TransportError as error:
                raise TransientError(f"download of {label} from {urlsplit(url).hostname}: {error!r}") from None
            try:
                if response.is_redirect and "location" in response.headers:
                    url = urljoin(url, response.headers["location"])
                    continue
                if response.status_code in (401, 403, 404, 410):
                    raise DownloadRefused(f"download URL refused (HTTP {response.status_code}); it may have expired")
                if response.status_code >= 500:
                    raise TransientError(f"download of {label}: HTTP {response.status_code}")
                if response.status_code not in (200, 206):
                    raise ItemFailed(f"download of {label}: unexpected HTTP {response.status_code}")
                yield response
                return
            finally:
                response.close()
        raise ItemFailed(f"download of {label}: more than {MAX_REDIRECTS} redirects")

    # --- re-licensing (spends money) -------------------------------------------------------

    def relicense_policy(self) -> RelicensePolicy | None:
        if not self.config.relicense:
            return None
        return RelicensePolicy(budget=self.config.max_relicenses_per_run,
                               subscription_id=self.config.subscription_id or None)

    def allotment(self) -> int | None:
        """Downloads left on the configured subscription (None when the API does not say)."""
        body = self._get_json("/v2/user/subscriptions")
        for entry in body.get("data") or []:
            if isinstance(entry, dict) and entry.get("id") == self.config.subscription_id:
                left = (entry.get("allotment") or {}).get("downloads_left")
                return int(left) if isinstance(left, (int, float)) else None
        raise ItemSkipped(f"subscription {self.config.subscription_id!r} ({self.key_prefix}.subscription_id) "
                          "is not among this account's subscriptions; nothing was licensed")

    def relicense(self, license: LicenseRecord) -> Relicensed:
        kind = MEDIA_KINDS[license.media_type]
        subscription = self.config.subscription_id
        entry: dict[str, Any] = {kind.licensing_id: license.media_id}
        params: dict[str, str] = {}
        if kind.editorial:
            entry.update(license=license.license or "premier_editorial_comp", size=license.size or "original")
            body: dict[str, Any] = {"country": self.config.editorial_country, kind.licensing_list: [entry]}
        elif license.media_type == "audio":
            entry.update(license=license.license or "audio_platform")
            body = {kind.licensing_list: [entry]}
        else:
            entry.update(subscription_id=subscription)
            if license.size and license.media_type in ("image", "video"):
                entry["size"] = license.size
            if license.media_type == "sfx" and license.format:
                entry["format"] = license.format
            params["subscription_id"] = subscription
            body = {kind.licensing_list: [entry]}
        path = kind.history_path  # the licensing endpoint shares the history's path (POST)
        response = self.api.request("POST", path, params=params, json=body, retry=False)
        self._raise_for_auth(response)
        if response.status_code >= 400:
            raise ItemFailed(f"licensing {license.media_type} {license.media_id} refused: HTTP "
                             f"{response.status_code}: {_message(response)}", final=response.status_code in (402, 403))
        try:
            result = (response.json().get("data") or [])[0]
        except (ValueError, IndexError, AttributeError):
            raise OutcomeUnknown(f"licensing {license.media_id}: unreadable answer") from None
        if result.get("error"):
            raise ItemFailed(f"licensing {license.media_type} {license.media_id} refused: {result['error']}", final=True)
        url = (result.get("download") or {}).get("url")
        new_id = result.get("license_id")
        return Relicensed(license_id=str(new_id) if new_id else None, url=url if isinstance(url, str) else None)

    def licenses_of_media(self, media_type: str, media_id: str) -> list[LicenseRecord]:
        kind = MEDIA_KINDS[media_type]
        body = self._get_json(kind.history_path, {f"{kind.item_key}_id": media_id, "sort": "newest", "per_page": 50})
        records = [self._record(kind, item) for item in body.get("data") or []]
        return [r for r in records if r is not None and r.media_id == media_id]

    def _check_download_url(self, url: str) -> None:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if host not in self.allowed_hosts:
            raise ItemFailed(
                f"refusing to download from {host!r}: not the API host nor one of "
                f"{self.key_prefix}.download_hosts {sorted(self.config.download_hosts)}"
            )
        if parts.scheme != "https" and not (parts.scheme == "http" and is_loopback(host)):
            raise ItemFailed(f"refusing to download over {parts.scheme!r} from {host!r}: https is required")

    def api_calls(self) -> dict[tuple[str, int], int]:
        return dict(self.api.calls)

    def check(self) -> str:
        body = self._get_json("/v2/user/subscriptions")
        subscriptions = [entry.get("id") for entry in body.get("data") or [] if isinstance(entry, dict)]
        return f"token accepted; {len(subscriptions)} subscription(s): {', '.join(map(str, subscriptions)) or 'none'}"

    def close(self) -> None:
        self.api.close()
        self._downloads.close()


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        return str(body.get("message") or body.get("errors") or body)[:300]
    return str(body)[:300]
