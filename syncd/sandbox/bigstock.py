"""The Bigstock endpoints the sandbox emulates (seed 001), on the same server as the Shutterstock ones.

Every answer is the API's envelope ``{"response_code", "message", "data"}``, except downloads,
which return the file, or on error an empty body with the error in the response headers.
Requests that need a secret carry ``auth_key = SHA-1(secret + account_id + subject)``; the
sandbox checks each one and remembers it (``auth_keys``) so tests can verify them.

    sandbox.bigstock.add_lightbox("Campaign 2026", [101, 102, 103])
    ...
    assert [p.image_id for p in sandbox.bigstock.purchases] == [101, 102]
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from syncd.sandbox.api import Request, Response
from syncd.sandbox.content import GeneratedFile
from syncd.sandbox.data import WORDS, description, keywords, record_rng

PATH_PREFIX = "/2/"
MAX_LIMIT = 200  # the API's maximum ``limit`` (seed 001, advanced search options)
DEFAULT_LIMIT = 50
FIRST_DOWNLOAD_ID = 724111049  # the seed's example download id
ERROR_CODE_HEADER = "X-Bigstock-Error-Code"
ERROR_MESSAGE_HEADER = "X-Bigstock-Error-Message"

# Bigstock's category names (seed 001 shows "Conceptual:Humorous", "Art-Illustration:Vector").
CATEGORY_NAMES: tuple[str, ...] = (
    "Abstract", "Animals", "Architecture", "Business", "Conceptual:Humorous", "Nature:Landscapes",
    "People:Lifestyle", "Technology", "Travel", "Food", "Art-Illustration:2D", "Art-Illustration:Vector",
)
CONTRIBUTORS: tuple[str, ...] = ("newart_pictures", "Tim", "sunny_studio", "lens_and_light")
# size_code → (label, format, scale of the large side); every image has s, m and l.
SIZES: dict[str, tuple[str, str, float]] = {
    "s": ("small", "jpg", 0.3), "m": ("medium", "jpg", 0.53), "l": ("large", "jpg", 1.0),
    "xl": ("extra large", "jpg", 1.6), "eps": ("vector", "eps", 0.25),
}
CONTENT_TYPES = {"jpg": "image/jpeg", "eps": "application/postscript"}


class BigstockError(Exception):
    """A refusal: becomes the envelope (or, for downloads, the error headers) with ``code``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Lightbox:
    """One lightbox of the sandbox account."""

    id: int
    title: str
    image_ids: list[int]
    private: bool = True


@dataclass(frozen=True)
class Purchase:
    """One approved purchase (money spent, on the real service)."""

    download_id: int
    image_id: int
    size_code: str
    at: float


@dataclass(frozen=True)
class AuthKeyUse:
    """One ``auth_key`` the sandbox received: for what, and whether it was the right one."""

    action: str  # lightboxes | lightbox | purchase | download
    subject: str  # "" for the lightbox list; else the lightbox, image or download id
    auth_key: str
    valid: bool


@dataclass
class BigstockApi:
    """A Bigstock account: lightboxes, image details, purchases and downloads, deterministic from ``seed``."""

    seed: int = 1
    account_id: str = "123456"
    secret: str = "sandbox-secret"
    clock: Callable[[], float] = time.time
    max_limit: int = MAX_LIMIT
    """The largest ``limit`` a lightbox page honours (lower it to exercise paging)."""
    errors_in_http_status: bool = True
    """Errors carry their code as the HTTP status too; False: HTTP 200 with the code only in the envelope."""
    purchase_refusal: tuple[int, str] | None = None
    """Refuse every purchase with this (response_code, message), e.g. ``(402, "Insufficient funds")``."""
    lightboxes: dict[int, Lightbox] = field(default_factory=dict, init=False)
    image_overrides: dict[int, dict[str, Any]] = field(default_factory=dict, init=False)
    _purchases: list[Purchase] = field(default_factory=list, init=False, repr=False)
    _auth_keys: list[AuthKeyUse] = field(default_factory=list, init=False, repr=False)
    _downloads: list[int] = field(default_factory=list, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    # --- steering -------------------------------------------------------------------------

    def add_lightbox(self, title: str, image_ids: Iterable[int] = (), *, private: bool = True,
                     lightbox_id: int | None = None) -> int:
        """Create a lightbox holding ``image_ids`` (any positive ids: images exist on demand); returns its id."""
        with self._lock:
            new_id = lightbox_id if lightbox_id is not None else 1000 + 17 * (len(self.lightboxes) + 1)
            self.lightboxes[new_id] = Lightbox(new_id, title, [int(i) for i in image_ids], private)
            return new_id

    def add_images(self, lightbox_id: int, image_ids: Iterable[int]) -> None:
        """Add images to a lightbox (at its end)."""
        with self._lock:
            box = self.lightboxes[lightbox_id]
            box.image_ids.extend(int(i) for i in image_ids if int(i) not in box.image_ids)

    def remove_image(self, lightbox_id: int, image_id: int) -> None:
        """Take an image out of a lightbox."""
        with self._lock:
            self.lightboxes[lightbox_id].image_ids.remove(int(image_id))

    def set_image(self, image_id: int, **fields: Any) -> None:
        """Override fields of an image's details (``title``, ``description``, ``formats`` …)."""
        with self._lock:
            self.image_overrides.setdefault(int(image_id), {}).update(fields)

    def auth_key(self, *subject: object) -> str:
        """The auth_key the seed defines: SHA-1 of secret + account id + subject, hex."""
        return sha1_auth_key(self.secret, self.account_id, *subject)

    # --- inspection -----------------------------------------------------------------------

    @property
    def purchases(self) -> list[Purchase]:
        """Every approved purchase, oldest first (a snapshot)."""
        with self._lock:
            return list(self._purchases)

    def purchased_image_ids(self) -> list[int]:
        """The image id of every purchase, in order (an id twice means it was bought twice)."""
        return [purchase.image_id for purchase in self.purchases]

    @property
    def auth_keys(self) -> list[AuthKeyUse]:
        """Every auth_key received, with whether it was right (a snapshot)."""
        with self._lock:
            return list(self._auth_keys)

    @property
    def downloads(self) -> list[int]:
        """The download id of every file served, in order."""
        with self._lock:
            return list(self._downloads)

    def image(self, image_id: int) -> dict[str, Any]:
        """The image's details as the image endpoint serves them."""
        rng = record_rng(self.seed, "bigstock-image", image_id)
        title = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 4))).title()
        width, height = rng.choice(((3000, 2000), (2000, 3000), (3600, 2400), (2400, 2400)))
        codes = ["s", "m", "l"] + (["xl"] if rng.random() < 0.5 else []) + (["eps"] if rng.random() < 0.2 else [])
        formats = [{"label": SIZES[code][0], "size_code": code, "width": int(width * SIZES[code][2]),
                    "height": int(height * SIZES[code][2])} for code in codes]
        detail: dict[str, Any] = {
            "id": image_id,
            "title": title,
            "description": description(rng),
            "preview": {"url": f"http://static.bigstockphoto.invalid/thumbs/large2/{image_id}.jpg",
                        "width": 450, "height": int(450 * height / width)},
            "formats": formats,
            "categories": [{"name": name} for name in rng.sample(CATEGORY_NAMES, rng.randint(1, 3))],
            "keywords": ",".join(sorted(keywords(rng))),
            "contributor": rng.choice(CONTRIBUTORS),
        }
        with self._lock:
            detail.update(self.image_overrides.get(image_id, {}))
        return detail

    def file_for(self, image_id: int, size_code: str) -> GeneratedFile:
        """The deterministic file a download of this image in this size serves."""
        fmt = SIZES[size_code][1]
        length = record_rng(self.seed, "bigstock-bytes", image_id, size_code).randint(20 * 1024, 90 * 1024)
        return GeneratedFile(f"bigstock/{self.seed}/{image_id}/{size_code}", fmt, length)

    # --- requests -------------------------------------------------------------------------

    def handles(self, path: str) -> bool:
        """Whether ``path`` is a Bigstock API path."""
        return path.startswith(PATH_PREFIX)

    def handle(self, request: Request) -> Response:
        """Answer one ``/2/{account_id}/…`` request."""
        match = _ROUTE.match(request.path)
        is_download = bool(match and match.group("action") == "download")
        try:
            if match is None:
                raise BigstockError(404, f"Not found: {request.path}")
            if request.method not in ("GET", "HEAD", "POST"):
                raise BigstockError(405, "Method not allowed")
            if match.group("account") != self.account_id:
                raise BigstockError(404, f"Account {match.group('account')} not found")
            params = _params(request)
            action, rest = match.group("action"), match.group("rest") or ""
            if action == "lightbox" and not rest:
                return self._envelope(200, "success", self._lightbox_list(params))
            if action == "lightbox" and rest.isdigit():
                return self._envelope(200, "success", self._lightbox_page(int(rest), params))
            if action == "image" and rest.isdigit():
                return self._envelope(200, "success", {"image": self.image(int(rest))})
            if action == "purchase" and not rest:
                return self._envelope(200, "success", self._purchase(params))
            if action == "download" and not rest:
                return self._download(params)
            raise BigstockError(404, f"Not found: {request.path}")
        except BigstockError as error:
            if is_download:
                return self._download_error(error)
            return self._envelope(error.code, error.message, None)

    def _envelope(self, code: int, message: str, data: Any) -> Response:
        status = code if self.errors_in_http_status else 200
        return Response.json(status, {"response_code": code, "message": message, "data": data})

    def _download_error(self, error: BigstockError) -> Response:
        """Seed 001: "In the event of an error, the response header should be checked for error information"."""
        return Response(error.code, {"Content-Type": "text/plain", ERROR_CODE_HEADER: str(error.code),
                                     ERROR_MESSAGE_HEADER: error.message})

    def _check_auth(self, action: str, params: dict[str, str], *subject: object, required: bool = True) -> None:
        received = params.get("auth_key")
        if received is None:
            if required:
                raise BigstockError(401, "auth_key is required")
            return
        expected = self.auth_key(*subject)
        valid = hmac.compare_digest(received.lower().encode(), expected.encode())
        with self._lock:
            self._auth_keys.append(AuthKeyUse(action, "".join(map(str, subject)), received, valid))
        if not valid:
            raise BigstockError(401, "Invalid auth_key")

    def _lightbox_list(self, params: dict[str, str]) -> dict[str, Any]:
        self._check_auth("lightboxes", params)
        with self._lock:
            boxes = [{"id": box.id, "title": box.title, "items": len(box.image_ids)} for box in self.lightboxes.values()]
        return {"total_items": len(boxes), "lightboxes": boxes}

    def _lightbox_page(self, lightbox_id: int, params: dict[str, str]) -> dict[str, Any]:
        with self._lock:
            box = self.lightboxes.get(lightbox_id)
            image_ids = list(box.image_ids) if box else []
        if box is None:
            raise BigstockError(404, f"Lightbox {lightbox_id} not found")
        self._check_auth("lightbox", params, lightbox_id, required=box.private)
        page = _int(params, "page", 1, 1)
        limit = min(_int(params, "limit", DEFAULT_LIMIT, 1), self.max_limit)
        start = (page - 1) * limit
        chosen = image_ids[start:start + limit]
        images = []
        for image_id in chosen:
            detail = self.image(image_id)
            images.append({"id": image_id, "title": detail["title"], "small_thumb": {
                "url": f"http://static.bigstockphoto.invalid/thumbs/small2/{image_id}.jpg", "width": 170, "height": 113}})
        total_pages = max(1, -(-len(image_ids) // limit))
        return {
            "page": {"items": len(images), "items_per_page": limit, "total_items": len(image_ids), "page": page,
                     "total_pages": total_pages},
            "lightbox": {"id": box.id, "name": box.title, "items": len(image_ids)},
            "images": images,
        }

    def _purchase(self, params: dict[str, str]) -> dict[str, Any]:
        image_id = params.get("image_id", "")
        if not image_id.isdigit():
            raise BigstockError(400, "image_id is required")
        self._check_auth("purchase", params, image_id)
        size_code = params.get("size_code", "")
        available = [entry["size_code"] for entry in self.image(int(image_id))["formats"]]
        if size_code not in available:
            raise BigstockError(400, f"Size code {size_code!r} is not available for image {image_id} "
                                     f"(available: {', '.join(available)})")
        if self.purchase_refusal is not None:
            raise BigstockError(*self.purchase_refusal)
        with self._lock:
            download_id = FIRST_DOWNLOAD_ID + len(self._purchases)
            self._purchases.append(Purchase(download_id, int(image_id), size_code, self.clock()))
        return {"currency_amount": 2.99, "currency_code": "USD", "download_id": download_id}

    def _download(self, params: dict[str, str]) -> Response:
        download_id = params.get("download_id", "")
        if not download_id.isdigit():
            raise BigstockError(400, "download_id is required")
        self._check_auth("download", params, download_id)
        with self._lock:
            purchase = next((p for p in self._purchases if p.download_id == int(download_id)), None)
            if purchase is not None:
                self._downloads.append(purchase.download_id)
        if purchase is None:
            raise BigstockError(404, f"Download {download_id} not found")
        file = self.file_for(purchase.image_id, purchase.size_code)
        extension = SIZES[purchase.size_code][1]
        headers = {"Content-Type": CONTENT_TYPES[extension],
                   "Content-Disposition": f'attachment; filename="bigstock_{purchase.image_id}.{extension}"'}
        return Response(200, headers, stream=file.iter_range(0, file.length), length=file.length)


def sha1_auth_key(secret: str, account_id: str, *subject: object) -> str:
    """``sha1(secret . account_id . subject…)`` as in seed 001's PHP examples, hex."""
    return hashlib.sha1("".join(str(part) for part in (secret, account_id, *subject)).encode()).hexdigest()


_ROUTE = re.compile(r"^/2/(?P<account>[^/]+)/(?P<action>[a-z]+)(?:/(?P<rest>[^/]*))?/?$")


def _params(request: Request) -> dict[str, str]:
    """Query parameters, and for a POST the form body's too (first value of each)."""
    merged = {name: values[0] for name, values in request.query.items() if values}
    if request.method == "POST" and request.body:
        form = parse_qs(request.body.decode("utf-8", "replace"), keep_blank_values=True)
        merged.update({name: values[0] for name, values in form.items() if values and name not in merged})
    return merged


def _int(params: dict[str, str], name: str, default: int, minimum: int) -> int:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BigstockError(400, f"{name} must be an integer") from None
    if value < minimum:
        raise BigstockError(400, f"{name} must be at least {minimum}")
    return value
