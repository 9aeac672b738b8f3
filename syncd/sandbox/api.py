"""The Shutterstock endpoints the sandbox emulates, as plain functions from a Request to a Response.

Nothing here touches sockets: ``server.py`` reads requests and writes responses, and
``sandbox.py`` decides which faults to inject around this layer.
"""

from __future__ import annotations

import hmac
import json
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from datetime import time as day_time
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from syncd.sandbox.content import GeneratedFile
from syncd.sandbox.data import asset_key, parse_time
from syncd.sandbox.history import ARCHIVE, Catalogue, LicenseRecord
from syncd.sandbox.kinds import KINDS, MediaKind, kind_for_path
from syncd.sandbox.ratelimit import QuotaState, RateLimiter
from syncd.sandbox.tokens import DownloadGrant, InvalidToken, UrlSigner

if TYPE_CHECKING:
    from syncd.sandbox.bigstock import BigstockApi

MAX_PER_PAGE = 200
MAX_BULK_IDS = 500
MAX_LICENSE_ITEMS = 50

_KIND_PATHS = "images|videos|audio|sfx"
_HISTORY_PATHS = "images|videos|audio|sfx|editorial/images|editorial/videos"


@dataclass
class Request:
    """One HTTP request as the API sees it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: Mapping[str, str]
    body: bytes = b""

    def param(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def params(self, name: str) -> list[str]:
        return self.query.get(name, [])


@dataclass
class Response:
    """A response to write: a bytes body, or a stream of ``length`` bytes."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    stream: Iterator[bytes] | None = None
    length: int | None = None

    def __post_init__(self) -> None:
        if self.length is None:
            self.length = len(self.body)

    @classmethod
    def json(cls, status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
        body = json.dumps(payload).encode()
        return cls(status, {"Content-Type": "application/json", **(headers or {})}, body)

    def chunks(self) -> Iterator[bytes]:
        if self.stream is not None:
            yield from self.stream
        elif self.body:
            yield self.body


class ApiError(Exception):
    """A request the API refuses; becomes ``{"message": ...}`` with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class RangeNotSatisfiable(Exception):
    """A ``Range`` that selects no byte of the file (answered with 416)."""


@dataclass(frozen=True)
class Route:
    """One endpoint: method, path pattern and handler (called with the pattern's named groups)."""

    method: str
    pattern: re.Pattern[str]
    handler: Callable[..., Response]


class SandboxApi:
    """Routes and answers the emulated ``/v2`` endpoints and ``/download`` links (``/2/…``: Bigstock's)."""

    def __init__(
        self,
        catalogue: Catalogue,
        signer: UrlSigner,
        limiter: RateLimiter,
        token: str,
        url_ttl: float,
        download_base: Callable[[], str],
        clock: Callable[[], float] = time.time,
        bigstock: BigstockApi | None = None,
    ) -> None:
        self.catalogue = catalogue
        self.bigstock = bigstock
        self.signer = signer
        self.limiter = limiter
        self.token = token
        self.url_ttl = url_ttl
        self.download_base = download_base
        self.clock = clock
        self.routes = self._routes()

    def _routes(self) -> list[Route]:
        # Order matters: ".../licenses" must win over ".../{id}".
        table: list[tuple[str, str, Callable[..., Response]]] = [
            ("GET", rf"/v2/(?P<kind>{_HISTORY_PATHS})/licenses", self.history),
            ("POST", rf"/v2/(?P<kind>{_HISTORY_PATHS})/licenses", self.license),
            ("POST", rf"/v2/(?P<kind>{_KIND_PATHS})/licenses/(?P<license_id>[^/]+)/downloads", self.redownload),
            ("GET", r"/v2/user/subscriptions", self.subscriptions),
            ("GET", r"/v2/(?P<kind>editorial/images|editorial/videos)/(?P<media_id>[^/]+)", self.editorial_details),
            ("GET", rf"/v2/(?P<kind>{_KIND_PATHS})", self.bulk_details),
            ("GET", rf"/v2/(?P<kind>{_KIND_PATHS})/(?P<media_id>[^/]+)", self.details),
            ("GET", r"/download/(?P<token>[^/]+)/(?P<name>[^/]+)", self.download),
        ]
        return [Route(method, re.compile(f"^{pattern}$"), handler) for method, pattern, handler in table]

    # --- entry points -------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        """Answer one request; /v2 calls go through User-Agent, auth and quota checks first."""
        if self.bigstock is not None and self.bigstock.handles(request.path):
            return self.bigstock.handle(request)  # Bigstock authenticates each call with its auth_key
        if request.path == "/v2" or request.path.startswith("/v2/"):
            return self._handle_v2(request)
        return self._guarded(request)

    def injected_status(self, request: Request, status: int) -> Response:
        """An injected server error, shaped like the API's own errors."""
        phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
        if self.bigstock is not None and self.bigstock.handles(request.path):
            return Response.json(status, {"response_code": status, "message": phrase, "data": None})
        return Response.json(status, {"message": phrase}, self._quota_headers(request, self.limiter.peek()))

    def injected_echo(self, request: Request, status: int) -> Response:
        """An error whose body echoes the request's headers, as careless upstream proxies do."""
        return Response.json(status, {"message": f"bad request; headers were {dict(request.headers)}"},
                             self._quota_headers(request, self.limiter.peek()))

    def injected_429(self, request: Request, reset_in: float) -> Response:
        """An injected rate-limit refusal whose quota renews ``reset_in`` seconds from now."""
        quota = QuotaState(self.limiter.limit, 0, int((self.clock() + reset_in) * 1000))
        return Response.json(429, quota.body(), quota.headers())

    def _handle_v2(self, request: Request) -> Response:
        if not request.headers.get("User-Agent"):
            response = _error(400, "A User-Agent header is required")
            quota = self.limiter.peek()
        elif not self._authorized(request):
            response = _error(401, "Unauthorized")
            quota = self.limiter.peek()
        else:
            allowed, quota = self.limiter.spend()
            response = self._guarded(request) if allowed else Response.json(429, quota.body())
        response.headers.update(quota.headers())
        return response

    def _authorized(self, request: Request) -> bool:
        scheme, _, credentials = (request.headers.get("Authorization") or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(credentials.strip().encode(), self.token.encode())

    def _guarded(self, request: Request) -> Response:
        """Route the request, turning ApiError into its JSON response."""
        try:
            return self._dispatch(request)
        except ApiError as error:
            return _error(error.status, error.message)

    def _dispatch(self, request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        allowed: list[str] = []
        for route in self.routes:
            match = route.pattern.match(request.path)
            if match is None:
                continue
            if route.method == method:
                return route.handler(request, **match.groupdict())
            allowed.append(route.method)
        if allowed:
            return _error(405, "Method not allowed", {"Allow": ", ".join(sorted(set(allowed)))})
        return _error(404, f"Not found: {request.path}")

    @staticmethod
    def _quota_headers(request: Request, quota: QuotaState) -> dict[str, str]:
        return quota.headers() if request.path.startswith("/v2") else {}

    # --- license history ----------------------------------------------------------------

    def history(self, request: Request, kind: str) -> Response:
        """``GET /v2/<kind>/licenses``: the history as it is at this moment, one page of it."""
        media_kind = kind_for_path(kind)
        page = _int_param(request, "page", 1, minimum=1)
        per_page = _int_param(request, "per_page", 20, minimum=1, maximum=MAX_PER_PAGE)
        sort = _choice_param(request, "sort", "newest", ("newest", "oldest"))
        keep = _history_filter(request, media_kind)
        items = [item for item in self.catalogue.history(media_kind) if keep(item)]
        if sort == "oldest":
            items.reverse()
        start = (page - 1) * per_page
        payload = {
            "data": items[start: start + per_page], "page": page, "per_page": per_page, "total_count": len(items),
        }
        with self.catalogue.lock:  # the dicts are live; tests may change them between requests
            return Response.json(200, payload)

    # --- licensing ----------------------------------------------------------------------

    def license(self, request: Request, kind: str) -> Response:
        """``POST /v2/<kind>/licenses``: each item becomes a new license on top of the history."""
        media_kind = kind_for_path(kind)
        body = _json_body(request)
        if media_kind.editorial and not body.get("country"):
            raise ApiError(400, "country is required")
        items = body.get(media_kind.body_key)
        if not isinstance(items, list) or not items:
            raise ApiError(400, f"{media_kind.body_key} must be a non-empty list")
        if len(items) > MAX_LICENSE_ITEMS:
            raise ApiError(400, f"at most {MAX_LICENSE_ITEMS} items can be licensed per request")
        results = [self._license_item(media_kind, item, request) for item in items]
        if any("license_id" in result for result in results):
            self.catalogue.record_licensing_call()
        return Response.json(200, {"data": results})

    def _license_item(self, kind: MediaKind, item: Any, request: Request) -> dict[str, Any]:
        """License one requested item, or describe why not in the item's ``error``."""
        if not isinstance(item, dict):
            return {"error": "each item must be an object"}
        media_id = str(item.get(kind.body_id_field) or "")
        result: dict[str, Any] = {kind.body_id_field: media_id}
        try:
            target, media = self._licensable_media(kind, media_id, item)
            size = self._licensing_size(target, media, item, request)
            subscription_id = self._subscription_id(kind, item, request)
        except ApiError as refusal:
            return {**result, "error": refusal.message}
        problem = self.catalogue.charge(subscription_id, kind)
        if problem:
            return {**result, "error": problem}
        license_item = self.catalogue.license_media(
            target, media_id, size, self.clock(), subscription_id, item.get("license"), item.get("metadata")
        )
        record = LicenseRecord(target, license_item)
        return {**result, "download": {"url": self.download_url(record, size)}, "allotment_charge": 1,
                "license_id": license_item["id"]}

    def _licensable_media(
        self, kind: MediaKind, media_id: str, item: dict[str, Any]
    ) -> tuple[MediaKind, dict[str, Any]]:
        """The media to license and the history it joins; editorial media may come through the image/video endpoints."""
        if not media_id:
            raise ApiError(400, f"{kind.body_id_field} is required")
        media = self.catalogue.media(kind, media_id)
        if media is not None:
            return kind, media
        editorial = KINDS.get(f"editorial_{kind.name}")
        media = self.catalogue.media(editorial, media_id) if editorial else None
        if editorial and media is not None:
            # Seed 004: editorial media licensed through the image endpoint needs the acknowledgement.
            if item.get("editorial_acknowledgement") is not True:
                raise ApiError(400, "Editorial media require editorial_acknowledgement: true")
            return editorial, media
        raise ApiError(404, f"{kind.media_type.capitalize()} {media_id} not found")

    def _licensing_size(self, kind: MediaKind, media: dict[str, Any], item: dict[str, Any], request: Request) -> str:
        available = self.catalogue.factory.sizes_of(kind, media)
        # sfx items name a format (wav|mp3), which is also how the sandbox sizes audio.
        format_as_size = item.get("format") if item.get("format") in kind.sizes else None
        size = item.get("size") or format_as_size or request.param("size")
        if size is None:
            size = kind.default_size if kind.default_size in available else available[-1]
        if size not in available:
            raise ApiError(400, f"Size {size} is not available for {media['id']}")
        return str(size)

    def _subscription_id(self, kind: MediaKind, item: dict[str, Any], request: Request) -> str:
        """The item's, else the request's, else the account's subscription for this kind (as the API does)."""
        explicit = item.get("subscription_id") or request.param("subscription_id")
        if explicit:
            return str(explicit)
        default = self.catalogue.subscription_for(kind)
        if default is None:
            raise ApiError(403, f"No subscription can license {kind.api_path}")
        return str(default["id"])

    # --- redownload and download --------------------------------------------------------

    def redownload(self, request: Request, kind: str, license_id: str) -> Response:
        """``POST /v2/<kind>/licenses/<license_id>/downloads``: a fresh link for a license."""
        media_kind = kind_for_path(kind)
        record = self.catalogue.license(license_id)
        if record is None or record.kind.name != media_kind.name:
            raise ApiError(404, f"License {license_id} not found")
        if not record.is_downloadable:
            raise ApiError(403, f"License {license_id} is not downloadable; license the media again")
        size = record.size
        if media_kind.name in ("image", "video"):
            size = str(_json_body(request).get("size") or size)
        if size not in media_kind.sizes:
            raise ApiError(400, f"size must be one of {', '.join(media_kind.sizes)}")
        media = self.catalogue.media(media_kind, record.media_id) or {}
        if size not in self.catalogue.factory.sizes_of(media_kind, media):
            raise ApiError(400, f"Size {size} is not available for {record.media_id}")
        answer = {"url": self.download_url(record, size)}
        if media_kind.name == "audio" and record.media_id in self.catalogue.archives:
            answer[ARCHIVE] = self.download_url(record, ARCHIVE)
        return Response.json(200, answer)

    def download_url(self, record: LicenseRecord, size: str) -> str:
        """A signed link to the license's file, valid for ``url_ttl`` seconds."""
        expires_ms = int((self.clock() + self.url_ttl) * 1000)
        token = self.signer.sign(DownloadGrant(str(record.item["id"]), size, expires_ms))
        return f"{self.download_base()}/download/{token}/{_file_name(record.kind, record.media_id, size)}"

    def download(self, request: Request, token: str, name: str) -> Response:
        """``GET /download/<token>/<name>``: the generated file; no API token needed, Range honoured."""
        try:
            grant = self.signer.verify(token, int(self.clock() * 1000))
        except InvalidToken as refusal:
            raise ApiError(403, refusal.reason) from refusal
        record = self.catalogue.license(grant.license_id)
        if record is None or name != _file_name(record.kind, record.media_id, grant.size):
            raise ApiError(404, "No such file")
        file = self._generated_file(record, grant.size)
        headers = {
            "Content-Type": file.content_type,
            "ETag": file.etag,
            "Accept-Ranges": "bytes",
            "Content-Disposition": f'attachment; filename="{name}"',
        }
        try:
            span = _byte_range(request.headers.get("Range"), file.length)
        except RangeNotSatisfiable:
            return _error(416, "Range not satisfiable", {"Content-Range": f"bytes */{file.length}"})
        if span is None:
            return Response(200, headers, stream=file.iter_range(0, file.length), length=file.length)
        start, stop = span
        headers["Content-Range"] = f"bytes {start}-{stop - 1}/{file.length}"
        return Response(206, headers, stream=file.iter_range(start, stop), length=stop - start)

    def _generated_file(self, record: LicenseRecord, size: str) -> GeneratedFile:
        """The file behind a license; its length is the media's ``assets`` ``file_size``."""
        kind = record.kind
        if size == ARCHIVE:
            length = self.catalogue.archives.get(record.media_id)
            if length is None:
                raise ApiError(404, "No such file")
            return GeneratedFile(f"{self.catalogue.seed}/{kind.name}/{record.media_id}/{ARCHIVE}", "zip", length)
        media = self.catalogue.media(kind, record.media_id)
        asset = (media or {}).get("assets", {}).get(asset_key(kind, size))
        if asset is None:
            raise ApiError(404, "No such file")
        key = f"{self.catalogue.seed}/{kind.name}/{record.media_id}/{size}"
        return GeneratedFile(key, kind.sizes[size], int(asset["file_size"]))

    # --- details and subscriptions ------------------------------------------------------

    def details(self, request: Request, kind: str, media_id: str) -> Response:
        """``GET /v2/<kind>/<id>`` (``view`` defaults to full)."""
        media_kind = kind_for_path(kind)
        view = _choice_param(request, "view", "full", ("minimal", "full"))
        media = self.catalogue.media(media_kind, media_id)
        if media is None:
            raise ApiError(404, f"{media_kind.media_type.capitalize()} {media_id} not found")
        with self.catalogue.lock:
            return Response.json(200, _view(media, view))

    def bulk_details(self, request: Request, kind: str) -> Response:
        """``GET /v2/<kind>?id=..&id=..`` (``view`` defaults to minimal; unknown ids are left out)."""
        media_kind = kind_for_path(kind)
        ids = request.params("id")
        if not ids:
            raise ApiError(400, "id is required")
        if len(ids) > MAX_BULK_IDS:
            raise ApiError(400, f"at most {MAX_BULK_IDS} ids per request")
        view = _choice_param(request, "view", "minimal", ("minimal", "full"))
        found = [media for media in (self.catalogue.media(media_kind, i) for i in ids) if media is not None]
        with self.catalogue.lock:
            return Response.json(200, {"data": [_view(media, view) for media in found]})

    def editorial_details(self, request: Request, kind: str, media_id: str) -> Response:
        """``GET /v2/editorial/<images|videos>/<id>?country=...`` (country is required)."""
        if not request.param("country"):
            raise ApiError(400, "country is required")
        media_kind = kind_for_path(kind)
        media = self.catalogue.media(media_kind, media_id)
        if media is None:
            raise ApiError(404, f"Editorial item {media_id} not found")
        with self.catalogue.lock:
            return Response.json(200, media)

    def subscriptions(self, request: Request) -> Response:
        """``GET /v2/user/subscriptions``."""
        subscriptions = self.catalogue.subscriptions()
        with self.catalogue.lock:
            return Response.json(200, {"data": subscriptions, "page": 1, "per_page": len(subscriptions),
                                       "total_count": len(subscriptions)})


# --- helpers -----------------------------------------------------------------------------


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response.json(status, {"message": message}, headers)


def _file_name(kind: MediaKind, media_id: str, size: str) -> str:
    if size == ARCHIVE:
        return f"shutterstock_{media_id}_{ARCHIVE}.zip"
    return f"shutterstock_{media_id}.{kind.sizes[size]}"


def _view(media: dict[str, Any], view: str) -> dict[str, Any]:
    """The minimal view lacks keywords and categories, as the docs describe."""
    if view == "full":
        return media
    return {key: value for key, value in media.items() if key not in ("keywords", "categories")}


def _json_body(request: Request) -> dict[str, Any]:
    if not request.body.strip():
        return {}
    try:
        body = json.loads(request.body)
    except ValueError as error:
        raise ApiError(400, f"request body is not valid JSON: {error}") from error
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object")
    return body


def _int_param(request: Request, name: str, default: int, minimum: int, maximum: int | None = None) -> int:
    raw = request.param(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as error:
        raise ApiError(400, f"{name} must be an integer") from error
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise ApiError(400, f"{name} must be {bound}")
    return value


def _choice_param(request: Request, name: str, default: str, choices: tuple[str, ...]) -> str:
    value = request.param(name) or default
    if value not in choices:
        raise ApiError(400, f"{name} must be one of {', '.join(choices)}")
    return value


def _date_param(request: Request, name: str, end_of_day: bool) -> datetime | None:
    """A date or datetime bound; a bare date covers its whole (UTC) day."""
    raw = request.param(name)
    if not raw:
        return None
    try:
        if len(raw) == 10:
            day = datetime.fromisoformat(raw).date()
            return datetime.combine(day, day_time.max if end_of_day else day_time.min, UTC)
        return parse_time(raw)
    except ValueError as error:
        raise ApiError(400, f"{name} must be an ISO 8601 date or date-time") from error


def _history_filter(request: Request, kind: MediaKind) -> Callable[[dict[str, Any]], bool]:
    """A predicate for the history query parameters (dates inclusive)."""
    start = _date_param(request, "start_date", end_of_day=False)
    end = _date_param(request, "end_date", end_of_day=True)
    availability = _choice_param(request, "download_availability", "all", ("all", "downloadable", "non_downloadable"))
    media_ids = set(request.params(kind.id_param))
    license_ids = set(request.params("license_id"))
    licenses = request.params("license")
    included = {name for name in licenses if not name.startswith("-")}
    excluded = {name[1:] for name in licenses if name.startswith("-")}
    username = request.param("username")

    def keep(item: dict[str, Any]) -> bool:
        moment = parse_time(item["download_time"])
        downloadable = bool(item.get("is_downloadable", True))
        return not (
            (start and moment < start)
            or (end and moment > end)
            or (availability == "downloadable" and not downloadable)
            or (availability == "non_downloadable" and downloadable)
            or (media_ids and str(item[kind.item_key]["id"]) not in media_ids)
            or (license_ids and item["id"] not in license_ids)
            or (included and item.get("license") not in included)
            or item.get("license") in excluded
            or (username and item.get("user", {}).get("username") != username)
        )

    return keep


def _byte_range(header: str | None, length: int) -> tuple[int, int] | None:
    """``[start, stop)`` for a single ``Range: bytes=`` spec; None means serve the whole file.

    Multiple ranges and malformed headers are ignored (a full 200 is allowed by RFC 9110);
    a range that starts past the end is refused with 416.
    """
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first, _, last = header[len("bytes="):].strip().partition("-")
    try:
        if first == "":
            suffix = int(last)
            if suffix <= 0:
                raise RangeNotSatisfiable()
            return max(length - suffix, 0), length
        start = int(first)
        stop = length if last == "" else min(int(last) + 1, length)
    except ValueError:
        return None
    if start >= length or stop <= start:
        raise RangeNotSatisfiable()
    return start, stop
