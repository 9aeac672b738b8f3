"""Bigstock: images collected in lightboxes, each purchased once within a budget (seed 001).

Bigstock keeps no license history. What a team wants synced is what it collects in lightboxes,
so every image in a configured lightbox is a *planned purchase*: a history record with the
license id ``bigstock-{image_id}`` that can never be re-downloaded. The engine's re-licensing
turns it into a purchase (``relicense``; the new license is ``bigstock-purchase-{download_id}``)
within ``max_purchases_per_run``, keeps the download id (``purchase_record``) and downloads the
file with it (``open_purchased``), as often as needed. There is no purchase history to check a
lost answer against (``can_reconcile = False``): such an image waits for ``syncd retry``.

Every request that needs the secret carries ``auth_key = SHA-1(secret + account_id + subject)``;
neither the secret nor any auth_key is ever put in a message, a log line or the state.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, quote, urljoin, urlsplit

import httpx
import structlog

from syncd import USER_AGENT
from syncd.config import BigstockSourceConfig, read_secret
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

log = structlog.get_logger("syncd.bigstock")

PAGE_LIMIT = 200  # the API's largest ``limit``: fewest calls per lightbox
MAX_REDIRECTS = 5
SIZE_CODES = ("s", "m", "l", "xl", "eps", "ai")  # smallest to largest; eps and ai are vectors
VECTOR_SIZES = frozenset({"eps", "ai"})
PLANNED_PREFIX = "bigstock-"  # + image id: an image in a lightbox, not bought yet
PURCHASE_PREFIX = "bigstock-purchase-"  # + download id: what a purchase bought
_AUTH_KEY_IN_TEXT = re.compile(r"(auth_key=)[^&\s'\"]+")


@dataclass(frozen=True)
class Answer:
    """Bigstock's response envelope: ``response_code`` (checked first), ``message`` and ``data``."""

    code: int | None  # None: no readable envelope on a 2xx answer
    message: str
    data: Any

    @classmethod
    def of(cls, response: httpx.Response) -> Answer:
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and "response_code" in body:
            try:
                code: int | None = int(body["response_code"])
            except (TypeError, ValueError):
                code = None
            if response.status_code >= 400:
                code = response.status_code  # an HTTP error is an error whatever the body says
            return cls(code, str(body.get("message") or "")[:300], body.get("data"))
        if response.status_code >= 400:
            message = str(body.get("message") or "") if isinstance(body, dict) else response.text
            return cls(response.status_code, message.strip()[:300] or response.reason_phrase, None)
        return cls(None, "the answer is not Bigstock's JSON envelope", None)

    @property
    def ok(self) -> bool:
        return self.code == 200

    def describe(self) -> str:
        return f"{self.code}: {self.message}" if self.message else str(self.code)


@dataclass(frozen=True)
class LightboxRef:
    """A configured lightbox, resolved to its id."""

    id: str
    title: str
    items: int | None


class BigstockSource(Source):
    """One Bigstock account's lightboxes, bought image by image within a budget."""

    kind = "bigstock"
    history_is_ordered = False  # lightbox contents have no usable order: every pass walks them all
    can_reconcile = False  # no purchase history to find what a lost answer bought

    def __init__(self, config: BigstockSourceConfig, gate: RateGate, key_prefix: str = "sources") -> None:
        super().__init__(config.name)
        self.config = config
        self.key_prefix = key_prefix
        self._validate(config)
        api = urlsplit(config.base_url)
        self.api_host = api.hostname or ""
        self._account_path = f"/2/{quote(config.account_id, safe='')}"
        self._secret = read_secret(config.secret_env, config.secret_file, f"source {config.name!r} secret")
        self._secret_hint = (f"the variable {config.secret_env}" if config.secret_env
                             else f"the file {config.secret_file}")
        self.api = ApiClient(config.base_url, {}, gate)
        # Files are fetched with their own client; it follows redirects only to the API host.
        self._downloads = httpx.Client(headers={"User-Agent": USER_AGENT}, timeout=TIMEOUT, follow_redirects=False,
                                       limits=httpx.Limits(max_connections=64, max_keepalive_connections=32))
        self._in_lightboxes: set[str] | None = None  # image ids of the last complete walk
        _hide_auth_keys_from_httpx_logs()

    def _validate(self, config: BigstockSourceConfig) -> None:
        api = urlsplit(config.base_url)
        if api.scheme not in ("https", "http") or not api.hostname:
            raise ConfigError(f"not a URL: {config.base_url!r}", key=f"{self.key_prefix}.base_url")
        if api.scheme == "http" and not is_loopback(api.hostname):
            raise ConfigError("plain http is allowed only to loopback; use https", key=f"{self.key_prefix}.base_url")
        if not re.fullmatch(r"[A-Za-z0-9_-]+", config.account_id):
            raise ConfigError(f"not a Bigstock account id: {config.account_id!r}", key=f"{self.key_prefix}.account_id")
        if bool(config.secret_env) == bool(config.secret_file):
            raise ConfigError("set exactly one of secret_env or secret_file", key=f"{self.key_prefix}.secret_env")
        if config.size_code not in SIZE_CODES:
            raise ConfigError(f"{config.size_code!r} is not a Bigstock size code ({', '.join(SIZE_CODES)})",
                              key=f"{self.key_prefix}.size_code")
        if not [name for name in config.lightboxes if name.strip()]:
            raise ConfigError("name at least one lightbox (its title or id): syncd buys what is collected there",
                              key=f"{self.key_prefix}.lightboxes")

    @property
    def media_types(self) -> list[str]:
        return ["image"]

    # --- the API ---------------------------------------------------------------------------

    def _auth_key(self, *subject: object) -> str:
        """Seed 001: ``sha1($secret_key . $account_id . …)``, 40 hex characters."""
        material = "".join(str(part) for part in (self._secret, self.config.account_id, *subject))
        return hashlib.sha1(material.encode("utf-8")).hexdigest()

    def _get(self, path: str, params: dict[str, Any], what: str) -> Answer:
        """A read-only call (retried on 5xx and network errors); auth refusals stop the command."""
        answer = Answer.of(self.api.request("GET", f"{self._account_path}{path}", params=params))
        if answer.code in (401, 403):
            raise self._auth_error(what, answer)
        if answer.code is None or answer.code >= 500:
            raise TransientError(f"{what}: Bigstock answered {answer.describe()}")
        return answer

    def _auth_error(self, what: str, answer: Answer) -> AuthError:
        return AuthError(
            f"Bigstock refused the credentials of source {self.name!r} ({what}: {answer.describe()}). "
            f"Check that {self._secret_hint} holds the API secret of account {self.config.account_id} "
            f"at {self.config.base_url}."
        )

    # --- discovery: the lightboxes ---------------------------------------------------------

    def _account_lightboxes(self) -> list[dict[str, Any]]:
        answer = self._get("/lightbox/", {"auth_key": self._auth_key()}, "listing the account's lightboxes")
        if answer.code == 404:
            raise self._auth_error("listing the account's lightboxes", answer)
        if not answer.ok:
            raise TransientError(f"listing lightboxes: Bigstock answered {answer.describe()}")
        boxes = (answer.data or {}).get("lightboxes") if isinstance(answer.data, dict) else None
        return [box for box in boxes or [] if isinstance(box, dict) and box.get("id") is not None]

    def _configured_lightboxes(self) -> list[LightboxRef]:
        """The configured lightboxes, by id or title (an id not in the list may be someone's public one)."""
        boxes = self._account_lightboxes()
        chosen: dict[str, LightboxRef] = {}
        missing: list[str] = []
        for wanted in (name.strip() for name in self.config.lightboxes if name.strip()):
            matches = ([b for b in boxes if str(b["id"]) == wanted]
                       or [b for b in boxes if b.get("title") == wanted]
                       or [b for b in boxes if str(b.get("title") or "").casefold() == wanted.casefold()])
            if not matches and wanted.isdigit():
                chosen.setdefault(wanted, LightboxRef(wanted, wanted, None))
            elif not matches:
                missing.append(wanted)
            for box in matches:
                items = box.get("items")
                chosen.setdefault(str(box["id"]), LightboxRef(str(box["id"]), str(box.get("title") or box["id"]),
                                                              items if isinstance(items, int) else None))
        if missing:
            known = ", ".join(f"{b.get('title')!r} (id {b['id']})" for b in boxes) or "none"
            raise ConfigError(f"no lightbox {', '.join(map(repr, missing))} in Bigstock account "
                              f"{self.config.account_id} (its lightboxes: {known})", key=f"{self.key_prefix}.lightboxes")
        return list(chosen.values())

    def _lightbox_pages(self, lightbox: LightboxRef) -> Iterator[list[dict[str, Any]]]:
        """The images of one lightbox, a page at a time (``page``/``limit``)."""
        page = 1
        previous: list[Any] = []
        while True:
            what = f"reading lightbox {lightbox.title!r} (id {lightbox.id}) page {page}"
            params = {"page": page, "limit": PAGE_LIMIT, "auth_key": self._auth_key(lightbox.id)}
            answer = self._get(f"/lightbox/{quote(lightbox.id, safe='')}/", params, what)
            if answer.code == 404:
                raise ConfigError(f"Bigstock has no lightbox {lightbox.id} for account {self.config.account_id} "
                                  f"({answer.message or 'not found'})", key=f"{self.key_prefix}.lightboxes")
            if not answer.ok or not isinstance(answer.data, dict):
                raise TransientError(f"{what}: Bigstock answered {answer.describe()}")
            images = [image for image in answer.data.get("images") or [] if isinstance(image, dict)]
            ids = [image.get("id") for image in images]
            if page > 1 and ids == previous:
                return  # the server ignores ``page``: everything was seen
            yield images
            paging = answer.data.get("page") or answer.data.get("paging") or {}
            total_pages = paging.get("total_pages") if isinstance(paging, dict) else None
            per_page = paging.get("items_per_page") if isinstance(paging, dict) else None
            if not images or (isinstance(total_pages, int) and page >= total_pages):
                return
            if not isinstance(total_pages, int) and len(images) < (per_page if isinstance(per_page, int) else PAGE_LIMIT):
                return
            previous = ids
            page += 1

    def history(self, media_type: str, *, since: datetime | None = None, until: datetime | None = None) -> Iterator[HistoryPage]:
        """Every image of the configured lightboxes, once each, as a planned purchase.

        Lightboxes say nothing about when an image was added, so a record's ``licensed_at`` is
        when this walk began (the state keeps the first time an image was seen); ``since`` and
        ``until`` therefore select nothing here. Each record is a microsecond older than the one
        before it, so the engine's newest-first queue buys in lightbox order, as ``--dry-run``
        lists it. An image in two lightboxes is one record.
        """
        walk_started = datetime.now(UTC).replace(microsecond=0)  # never after a purchase made by this pass
        lightboxes = self._configured_lightboxes()
        known_total = [box.items for box in lightboxes]
        total = sum(n for n in known_total if n is not None) if None not in known_total else None
        seen: set[str] = set()
        page_number = 0
        for lightbox in lightboxes:
            for images in self._lightbox_pages(lightbox):
                records = []
                for image in images:
                    record = self._planned(image, lightbox, walk_started - timedelta(microseconds=len(seen)))
                    if record is not None and record.media_id not in seen:
                        seen.add(record.media_id)
                        records.append(record)
                page_number += 1
                yield HistoryPage(records=records, page=page_number, total_count=total)
        self._in_lightboxes = seen  # only a complete walk says what is no longer collected

    def _planned(self, image: dict[str, Any], lightbox: LightboxRef, seen_at: datetime) -> LicenseRecord | None:
        image_id = str(image.get("id") or "")
        if not image_id.isdigit():
            log.warning("lightbox_item_unreadable", source=self.name, lightbox=lightbox.id, item=image.get("id"))
            return None
        return LicenseRecord(
            source=self.name,
            media_type="image",
            license_id=f"{PLANNED_PREFIX}{image_id}",
            media_id=image_id,
            licensed_at=seen_at,
            license="standard",
            size=self.config.size_code,
            format=_format_of(self.config.size_code),
            is_downloadable=False,  # nothing is downloadable before it is bought
            record={"image_id": int(image_id), "title": image.get("title"), "lightbox_id": lightbox.id,
                    "lightbox": lightbox.title},
        )

    def details(self, media_type: str, media_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Image details, one call per image (Bigstock has no bulk endpoint); missing images are left out."""
        found: dict[str, dict[str, Any]] = {}
        for media_id in dict.fromkeys(media_ids):
            try:
                answer = self._get(f"/image/{quote(media_id, safe='')}", {}, f"details of image {media_id}")
            except TransientError as error:
                log.warning("details_unavailable", source=self.name, media_id=media_id, error=str(error))
                continue
            image = (answer.data or {}).get("image") if answer.ok and isinstance(answer.data, dict) else None
            if isinstance(image, dict):
                found[media_id] = _details_entry(image)
        return found

    # --- buying (spends money) -------------------------------------------------------------

    def can_redownload(self, media_type: str) -> bool:
        return False  # a lightbox image is downloadable only once it is bought

    def unavailable_reason(self, media_type: str) -> str:
        return (f"not bought yet: {self.key_prefix}.max_purchases_per_run is 0, so nothing is bought "
                "(raise it to buy the images in the lightboxes)")

    def can_relicense(self, media_type: str) -> bool:
        return self.config.max_purchases_per_run > 0

    def relicense_policy(self) -> RelicensePolicy | None:
        if self.config.max_purchases_per_run <= 0:
            return None
        return RelicensePolicy(budget=self.config.max_purchases_per_run, subscription_id=None)

    def relicense(self, license: LicenseRecord) -> Relicensed:
        """Purchase the image of a planned record in the configured size; raises ``OutcomeUnknown`` on a lost answer."""
        image_id = license.media_id
        if not image_id.isdigit():
            raise ItemFailed(f"not a Bigstock image id: {image_id!r}", final=True)
        if self._in_lightboxes is not None and image_id not in self._in_lightboxes:
            raise ItemSkipped(f"image {image_id} is no longer in any of the lightboxes {self.config.lightboxes}; "
                              "nothing was bought (it is bought if it comes back)")
        size_code = self.config.size_code  # the configured size now, even for images seen before a change
        params = {"image_id": image_id, "size_code": size_code, "auth_key": self._auth_key(image_id)}
        response = self.api.request("GET", f"{self._account_path}/purchase", params=params, retry=False)
        answer = Answer.of(response)
        what = f"purchase of image {image_id} in size {size_code!r}"
        if answer.ok:
            download_id = (answer.data or {}).get("download_id") if isinstance(answer.data, dict) else None
            if not str(download_id or "").isdigit():
                raise OutcomeUnknown(f"{what}: the answer has no download id; the image may have been bought")
            data: dict[str, Any] = answer.data
            facts: dict[str, Any] = {"download_id": str(download_id), "size_code": size_code,
                                     "purchased_at": datetime.now(UTC).replace(microsecond=0).isoformat()}
            for name in ("currency_amount", "currency_code"):
                if data.get(name) is not None:
                    facts[name] = data[name]
            log.info("purchased", source=self.name, image_id=image_id, size_code=size_code, download_id=download_id)
            return Relicensed(license_id=f"{PURCHASE_PREFIX}{download_id}", url=self._download_url(str(download_id)),
                              details=facts)
        if answer.code is None or answer.code >= 500:
            raise OutcomeUnknown(f"{what}: Bigstock answered {answer.describe()}; the image may have been bought")
        if answer.code == 401:
            raise self._auth_error(what, answer)
        if answer.code == 402:
            raise ItemSkipped(f"Bigstock refused the {what} ({answer.describe()}); nothing was bought. "
                              "It is tried again on every pass until the account can pay.")
        raise ItemFailed(f"Bigstock refused the {what} ({answer.describe()}); nothing was bought", final=True)

    def purchase_record(self, answer: Relicensed) -> dict[str, Any]:
        """The download id (reusable), size code, time and price: never the secret, an auth_key or a URL."""
        return dict(answer.details or {})

    def open_purchased(self, license: LicenseRecord, kept: dict[str, Any],
                       headers: dict[str, str] | None = None) -> AbstractContextManager[httpx.Response] | None:
        # ``headers`` (a Range to resume) are not sent: Bigstock's images are small; a retry starts over.
        download_id = str(kept.get("download_id") or "") or _download_id_of(license.license_id)
        if not download_id or not download_id.isdigit():
            return None
        return self._open_download(download_id, license.license_id)

    def open_download(self, license: LicenseRecord,
                      headers: dict[str, str] | None = None) -> AbstractContextManager[httpx.Response]:
        download_id = _download_id_of(license.license_id)
        if download_id is None:
            raise ItemSkipped(f"image {license.media_id} is not bought yet and purchases are off "
                              f"({self.key_prefix}.max_purchases_per_run = 0)")
        return self._open_download(download_id, license.license_id)

    def open_url(self, url: str, label: str,
                 headers: dict[str, str] | None = None) -> AbstractContextManager[httpx.Response]:
        """A download handed out by ``relicense``: the URL names the download id; it is signed just now."""
        parts = urlsplit(url)
        download_id = (parse_qs(parts.query).get("download_id") or [""])[0]
        if parts.hostname != self.api_host or not parts.path.endswith("/download") or not download_id.isdigit():
            raise ItemFailed(f"download of {label}: not a Bigstock download of this account")
        return self._open_download(download_id, label)

    def _download_url(self, download_id: str) -> str:
        """Where a purchase is downloaded; without its auth_key, which is computed for each request."""
        return f"{self.api.base_url}{self._account_path}/download?download_id={download_id}"

    @contextmanager
    def _open_download(self, download_id: str, label: str) -> Iterator[httpx.Response]:
        """Stream the file of a purchase, following redirects only on the API host."""
        request = self._downloads.build_request(
            "GET", f"{self.api.base_url}{self._account_path}/download",
            params={"auth_key": self._auth_key(download_id), "download_id": download_id})
        for _ in range(MAX_REDIRECTS + 1):
            self._check_download_host(request.url, label)
            try:
                response = self._downloads.send(request, stream=True)
            except httpx.TransportError as error:
                raise TransientError(f"download {download_id} of {label}: cannot reach {request.url.host}: "
                                     f"{_scrub(repr(error))}") from None
            try:
                if response.is_redirect and "location" in response.headers:
                    request = self._downloads.build_request("GET", urljoin(str(request.url), response.headers["location"]))
                    continue
                problem = self._download_problem(response, download_id, label)
                if problem is not None:
                    raise problem
                yield response
                return
            finally:
                response.close()
        raise ItemFailed(f"download {download_id} of {label}: more than {MAX_REDIRECTS} redirects")

    def _check_download_host(self, url: httpx.URL, label: str) -> None:
        if url.host != self.api_host:
            raise ItemFailed(f"download of {label}: refusing to follow a redirect to {url.host!r}, "
                             f"which is not the API host {self.api_host!r}")
        if url.scheme != "https" and not (url.scheme == "http" and is_loopback(url.host)):
            raise ItemFailed(f"download of {label}: refusing {url.scheme!r} to {url.host!r}; https is required")

    def _download_problem(self, response: httpx.Response, download_id: str, label: str) -> Exception | None:
        """Seed 001: a failed download says why in its response headers (and maybe an envelope)."""
        headers = {name: value for name, value in response.headers.items() if "error" in name.lower()}
        content_type = response.headers.get("content-type", "").lower()
        if response.status_code == 200 and not headers and "json" not in content_type:
            return None
        envelope = _small_envelope(response) if "json" in content_type else None
        code = response.status_code
        for name, value in headers.items():
            if "code" in name.lower() and value.strip().isdigit():
                code = int(value)
        if envelope is not None and envelope.code is not None and code == 200:
            code = envelope.code
        messages = [value for name, value in headers.items() if "code" not in name.lower()]
        message = "; ".join(messages) or (envelope.message if envelope else "") or response.reason_phrase
        what = f"Bigstock refused download {download_id} of {label} ({code}: {_scrub(message)[:300]})"
        if code == 401:
            return AuthError(f"{what}. Check that {self._secret_hint} holds the API secret of account "
                             f"{self.config.account_id} at {self.config.base_url}.")
        if code in (403, 404, 410):
            return DownloadRefused(what)
        if code >= 500:
            return TransientError(what)
        return ItemFailed(what)

    # --- what the engine asks about files -------------------------------------------------

    def size_rank(self, media_type: str, size: str | None) -> int:
        return SIZE_CODES.index(size) if size in SIZE_CODES else -1

    def extension(self, license: LicenseRecord, details: dict[str, Any] | None) -> str | None:
        """Raster sizes are JPEG; a vector's format (eps or ai) is read from the file itself."""
        return _format_of(self.config.size_code)

    def api_calls(self) -> dict[tuple[str, int], int]:
        return dict(self.api.calls)

    def check(self) -> str:
        boxes = self._account_lightboxes()
        chosen = self._configured_lightboxes()
        names = ", ".join(f"{box.title!r} (id {box.id}{'' if box.items is None else f', {box.items} images'})"
                          for box in chosen)
        budget = self.config.max_purchases_per_run
        spend = (f"buys up to {budget} image(s) per pass in size {self.config.size_code!r}" if budget
                 else "buys nothing (max_purchases_per_run = 0)")
        return f"secret accepted; {len(boxes)} lightbox(es) in account {self.config.account_id}; syncing {names}; {spend}"

    def close(self) -> None:
        self.api.close()
        self._downloads.close()


def _format_of(size_code: str) -> str | None:
    return None if size_code in VECTOR_SIZES else "jpg"


def _download_id_of(license_id: str) -> str | None:
    """``bigstock-purchase-724111049`` → ``724111049``; None for a planned (unbought) record."""
    if license_id.startswith(PURCHASE_PREFIX) and license_id[len(PURCHASE_PREFIX):].isdigit():
        return license_id[len(PURCHASE_PREFIX):]
    return None


def _details_entry(image: dict[str, Any]) -> dict[str, Any]:
    """The image endpoint's fields in the shape the sidecar and the naming template read."""
    keywords = image.get("keywords")
    if isinstance(keywords, str):
        keywords = [word.strip() for word in keywords.split(",") if word.strip()]
    categories = [entry if isinstance(entry, dict) else {"name": str(entry)} for entry in image.get("categories") or []]
    contributor = image.get("contributor")
    formats = [entry for entry in image.get("formats") or [] if isinstance(entry, dict)]
    entry: dict[str, Any] = {
        "id": str(image.get("id")),
        "title": image.get("title") or "",
        "description": image.get("description") or image.get("title") or "",
        "keywords": keywords or [],
        "categories": categories,
        "contributor": {"id": str(contributor)} if contributor else {},
        "formats": formats,
        "original_filename": None,
    }
    largest = max((f for f in formats if f.get("width") and f.get("height")),
                  key=lambda f: f["width"] * f["height"], default=None)
    if largest is not None:
        entry["aspect"] = round(largest["width"] / largest["height"], 4)
    return entry


def _small_envelope(response: httpx.Response) -> Answer | None:
    """The envelope of an error answer, read only when it is small."""
    try:
        if int(response.headers.get("content-length") or 0) > 65536:
            return None
        response.read()
        return Answer.of(response)
    except (httpx.HTTPError, ValueError):
        return None


def _scrub(text: str) -> str:
    """No auth_key leaves in a message, whatever echoes a URL."""
    return _AUTH_KEY_IN_TEXT.sub(r"\1[redacted]", text)


class _AuthKeyFilter(logging.Filter):
    """httpx logs request URLs (with ``-v``); an auth_key in them is masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "auth_key=" in message:
            record.msg, record.args = _scrub(message), ()
        return True


def _hide_auth_keys_from_httpx_logs() -> None:
    logger = logging.getLogger("httpx")
    if not any(isinstance(existing, _AuthKeyFilter) for existing in logger.filters):
        logger.addFilter(_AuthKeyFilter())
