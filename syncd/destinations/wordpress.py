"""WordPress destination: each asset is one attachment in the media library, through the REST API.

Design
------
* **One attachment per asset, found by syncd's identity.** The attachment carries post meta
  ``syncd_source``, ``syncd_media_type``, ``syncd_media_id``, ``syncd_sha256``,
  ``syncd_bytes``, ``syncd_key`` and ``syncd_sidecar`` (the sidecar document, byte for byte).
  WordPress stores only meta keys a plugin registered, so syncd ships a one-file must-use
  plugin, ``deploy/wordpress/syncd-meta.php``, which registers them (writable by users who
  may upload), adds the media-collection filters ``syncd_key`` / ``syncd_asset`` /
  ``syncd_has_sidecar``, hides the meta from visitors, and answers
  ``GET /wp-json/syncd/v1/status`` so syncd can refuse to write without it (an unregistered
  key is dropped silently, and every re-run would then upload everything again).
  A deterministic slug was the alternative that needs no plugin; it was rejected because
  slugs are edited by editors and de-duplicated by WordPress (``-2``), and because the
  sidecar then has nowhere to live that round-trips exactly: the description and caption
  are filtered (kses) for Authors and edited by people.
* **Keys are names, not identities.** ``put`` looks the asset up by (source, media type,
  media id); an asset already in the library is never uploaded again. Under a new key (a
  changed template) the attachment is re-keyed; with different bytes (a larger size
  licensed later) it keeps its file, as the contract says: "an attachment keeps its id and
  file for good". ``stat``, ``get_sidecar`` and ``put_sidecar`` find the attachment by
  its ``syncd_key``.
* **Upload** streams the file from disk with ``Content-MD5`` of the bytes whose SHA-256 the
  engine verified (WordPress refuses a mismatch with 412), and the identity meta in the same
  request: no window in which an attachment exists without it. Within PHP's form limits
  (which plugin 1.1 reports) it is one form upload, ``multipart/form-data``, that also
  carries the sidecar, title, alt text, caption and description, so ``put_sidecar`` has
  nothing left to write; PHP spools it to disk. A larger file is the raw body (WordPress
  reads it into one string, so ``memory_limit`` bounds it) and the rest follows in a second
  request. A file beyond both is refused before the engine downloads it (``refuse_size``).
* **Metadata.** The first time an attachment is completed (its sidecar written) syncd sets
  the title, alt text (images) and a credit caption ("Photo: contributor 1603781 /
  Shutterstock"); after that they belong to the editors. The description holds a block
  between ``<!-- syncd:licenses -->`` markers naming every license (id, type, size, date),
  rewritten on every sidecar update; text editors add around it is kept.
* **Errors** name the cause and the fix: 401 → ``AuthError`` (exit 3); a missing
  ``upload_files`` capability, a refused file type, a size limit, a 5xx → ``DestinationError``
  (that item fails and is retried on a later pass; the rest goes on).
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
import stamina

from syncd import USER_AGENT, sidecar
from syncd.destinations.base import Destination, ObjectInfo, StoredObject
from syncd.errors import AuthError, ConfigError, DestinationError
from syncd.http import is_loopback
from syncd.media import content_type_for
from syncd.sizes import human_bytes

log = logging.getLogger(__name__)

PLUGIN_PATH = "deploy/wordpress/syncd-meta.php"
PLUGIN_ROUTE = "/syncd/v1/status"
MEDIA = "/wp/v2/media"
PAGE_SIZE = 100  # WordPress's maximum per_page
CHUNK = 1024 * 1024
TIMEOUT = httpx.Timeout(connect=10.0, read=300.0, write=300.0, pool=60.0)  # PHP may resize big images
LICENSES_BEGIN = "<!-- syncd:licenses -->"
LICENSES_END = "<!-- /syncd:licenses -->"
TITLE_LIMIT = 150
# A form upload's other fields (sidecar, metadata) count towards post_max_size too.
FORM_OVERHEAD = 256 * 1024
# What WordPress itself needs beside a raw body it holds in memory.
RAW_BODY_HEADROOM = 48 * 1024 * 1024
UPLOAD_DIR_ATTEMPTS = 4  # the month-folder race settles at once; a permission problem does not
META_KEYS = ("syncd_source", "syncd_media_type", "syncd_media_id", "syncd_sha256", "syncd_bytes",
             "syncd_key", "syncd_sidecar")
_LOOKUP_FIELDS = "id,meta,description,source_url,media_details"
# What WordPress calls a refused upload: a form upload's error, a raw body's error.
_UPLOAD_ERRORS = ("rest_upload_unknown_error", "rest_upload_sideload_error")
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")

# How the credit line names the medium and the agency.
_MEDIUM = {"image": "Photo", "editorial_image": "Photo", "video": "Video", "editorial_video": "Video",
           "audio": "Music", "sfx": "Sound"}
_AGENCIES = {"shutterstock": "Shutterstock", "bigstock": "Bigstock"}
_IMAGE_TYPES = ("image", "editorial_image")


class WordpressDestination(Destination):
    """Stores each asset as one attachment of a WordPress media library (REST API, Application Password)."""

    kind: ClassVar[str] = "wordpress"
    # The upload carries Content-MD5 of bytes hashed in the same read as the SHA-256 the
    # engine verified; WordPress refuses a body that does not match (412).
    verifies_checksum: ClassVar[bool] = True
    # An attachment keeps its file for good: putting other bytes for the same asset updates
    # its identity meta but not its file (the contract's WordPress paragraph).
    replaces_files: ClassVar[bool] = False
    # The sidecar is kept on the attachment, so there is none without the asset.
    sidecar_needs_asset: ClassVar[bool] = True
    # WordPress refuses a file whose bytes do not match its extension (e.g. noise named .jpg).
    checks_file_content: ClassVar[bool] = True
    # One attachment per asset (the contract): an audio track's stems archive is not uploaded
    # as a second attachment with the same identity; the library's sidecar does not list it.
    stores_companions: ClassVar[bool] = False

    page_size: int = PAGE_SIZE

    def __init__(self, name: str, url: str, username: str, password: str,
                 transport: httpx.BaseTransport | None = None) -> None:
        super().__init__(name)
        self.site = _site_url(name, url)
        self.username = username
        self._client = httpx.Client(
            auth=(username, password),
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            timeout=TIMEOUT,
            follow_redirects=False,  # a redirect would carry the password elsewhere, or turn a POST into a GET
            transport=transport,
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
        )
        self._ready = False
        self._ready_lock = threading.Lock()
        self._rest_route = False  # True: the site has no pretty permalinks, use ?rest_route=
        # PHP's upload limits in bytes, as the plugin reports them (plugin 1.1 and later)
        self._limits: dict[str, int] = {}
        # The attachment a put just created, by key, for the put_sidecar that follows it.
        self._created: dict[str, dict[str, Any]] = {}
        self._created_lock = threading.Lock()

    # --- the Destination operations ---------------------------------------------------

    def stat(self, key: str) -> StoredObject | None:
        """Size and SHA-256 of the file of the attachment syncd stored under ``key``, or None."""
        attachment = self._by_key(key)
        return None if attachment is None else _stored(key, attachment)

    def put(self, key: str, path: Path, info: ObjectInfo) -> StoredObject:
        """Upload ``path`` as a new attachment, unless the asset is in the library already."""
        size, sha256, md5 = self._hash_local(key, path, info)
        # Not asked when the engine knows the library holds nothing of this asset (one request less).
        existing = None if info.known_absent else self._by_asset(info.source, info.media_type, info.media_id)
        if existing is not None:
            return self._keep(key, existing, info)
        self.refuse_size(key, size)
        ext = key.rsplit(".", 1)[-1].lower() if "." in key.rsplit("/", 1)[-1] else ""
        content_type = info.content_type or content_type_for(ext)
        identity = {
            "meta[syncd_source]": info.source,
            "meta[syncd_media_type]": info.media_type,
            "meta[syncd_media_id]": info.media_id,
            "meta[syncd_sha256]": sha256,
            "meta[syncd_bytes]": str(size),
            "meta[syncd_key]": key,
        }
        if self._as_form(size):
            fields = dict(identity)
            if info.sidecar:
                # The whole attachment in one request: its file, identity, sidecar and metadata;
                # put_sidecar then finds nothing left to write.
                fields["meta[syncd_sidecar]"] = sidecar.encode(info.sidecar).decode("utf-8")
                fields["description"] = license_block(info.sidecar)
                fields.update(first_metadata(info.sidecar))
            response = self._upload(key, path, form_file=(_file_name(key), content_type), data=fields,
                                    headers={"Content-MD5": md5})
        else:
            # Over PHP's form limits (or limits unknown): the file is the raw body, the identity in
            # the query string; put_sidecar then writes the sidecar and metadata.
            response = self._upload(key, path, params=identity, headers={
                "Content-Type": content_type,
                # Raw UTF-8 is what WordPress parses (it refuses RFC 5987 filename*=).
                "Content-Disposition": f'attachment; filename="{_file_name(key)}"'.encode(),
                "Content-MD5": md5,
                "Content-Length": str(size),
            })
        if response.status_code != 201:
            raise self._error(response, f"upload '{key}'", key=key, ext=ext, size=size)
        attachment = response.json()
        with self._created_lock:
            self._created[key] = attachment
        log.info("%suploaded '%s' as attachment %s", self._where(), key, attachment.get("id"))
        return StoredObject(key=key, bytes=size, sha256=sha256)

    def put_sidecar(self, key: str, document: bytes) -> None:
        """Keep ``document`` with the attachment; update its description (and first-time metadata)."""
        try:
            text = document.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DestinationError(self._where(f"the sidecar of '{key}' is not UTF-8")) from exc
        with self._created_lock:
            attachment = self._created.pop(key, None)
        if attachment is None:
            attachment = self._by_key(key)
        if attachment is None:
            raise DestinationError(self._where(
                f"no attachment holds '{key}': the sidecar is kept with the attachment, so the asset "
                "is stored first; the item will be retried"))
        if (attachment.get("meta") or {}).get("syncd_sidecar") == text:
            return  # written with the upload
        changes: dict[str, Any] = {"meta": {"syncd_sidecar": text}}
        parsed = sidecar.decode(document)
        if parsed is not None:
            current = _raw(attachment.get("description"))
            changes["description"] = merge_description(current, license_block(parsed))
            if not (attachment.get("meta") or {}).get("syncd_sidecar"):
                changes.update(first_metadata(parsed))  # from now on these belong to the editors
        self._update(attachment["id"], changes, f"store the sidecar of '{key}'")

    def get_sidecar(self, key: str) -> bytes | None:
        """The sidecar kept with the attachment stored under ``key``, or None."""
        attachment = self._by_key(key)
        if attachment is None:
            return None
        text = (attachment.get("meta") or {}).get("syncd_sidecar")
        return text.encode("utf-8") if isinstance(text, str) and text else None

    def iter_sidecars(self) -> Iterator[tuple[str, bytes]]:
        """Every attachment with a sidecar, oldest first, as (key, sidecar bytes)."""
        page = 1
        while True:
            response = self._get(MEDIA, {"syncd_has_sidecar": "true", "per_page": self.page_size, "page": page,
                                         "orderby": "id", "order": "asc", "_fields": "id,meta"},
                                 doing="list the attachments syncd stored")
            for attachment in response.json():
                meta = attachment.get("meta") or {}
                key, text = meta.get("syncd_key"), meta.get("syncd_sidecar")
                if isinstance(key, str) and key and isinstance(text, str) and text:
                    yield key, text.encode("utf-8")
            if page >= int(response.headers.get("X-WP-TotalPages") or 1):
                return
            page += 1

    def is_empty(self) -> bool:
        """True when no attachment carries a syncd sidecar (one small request)."""
        response = self._get(MEDIA, {"syncd_has_sidecar": "true", "per_page": 1, "_fields": "id"},
                             doing="look for attachments syncd stored")
        return not response.json()

    def check(self) -> str | None:
        """Credentials, the ``upload_files`` capability and the plugin, verified without uploading.

        Returns what PHP's upload limits allow (or that the plugin is too old to say).
        """
        try:
            probe = self._discover()
            response = self._send("GET", "/wp/v2/users/me", params={"context": "edit"}, doing="read its own user",
                                  probe_api=True)
            if response.status_code != 200:
                raise self._error(response, "read its own user")
            user = response.json()
            if not (user.get("capabilities") or {}).get("upload_files"):
                roles = ", ".join(user.get("roles") or []) or "none"
                raise ConfigError(self._where(
                    f"user '{self.username}' (role: {roles}) may not upload files: give the user the Author "
                    "role or higher (Users > All Users > Role); Editors can also update attachments others "
                    "uploaded"), key=f"destinations.{self.name}.username")
            self._require_plugin(probe)
        except DestinationError as exc:
            raise ConfigError(str(exc), key=f"destinations.{self.name}.url") from None
        self._ready = True
        form, raw = self._form_limit(), self._raw_limit()
        if form is None:
            return f"update its syncd-meta plugin from {PLUGIN_PATH} so that syncd learns PHP's upload limits"
        said = f"it accepts form uploads up to {human_bytes(form, exact=True)}"
        if raw is not None and raw < 0:
            return said + ", larger files as raw bodies (PHP memory_limit is unlimited)"
        if raw is not None and raw > form:
            return said + f", larger ones up to {human_bytes(raw, exact=True)} as raw bodies (PHP memory_limit)"
        return said

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    # --- finding attachments ---------------------------------------------------------------

    def _by_key(self, key: str) -> dict[str, Any] | None:
        found = self._lookup({"syncd_key": key}, lambda meta: meta.get("syncd_key") == key, f"look up '{key}'")
        return found

    def _by_asset(self, source: str, media_type: str, media_id: str) -> dict[str, Any] | None:
        def same(meta: dict[str, Any]) -> bool:
            return (meta.get("syncd_source"), meta.get("syncd_media_type"), meta.get("syncd_media_id")) == (
                source, media_type, media_id)

        return self._lookup({"syncd_asset": f"{source}/{media_type}/{media_id}"}, same,
                            f"look up {source} {media_type} {media_id}")

    def _lookup(self, params: dict[str, str], matches: Any, doing: str) -> dict[str, Any] | None:
        """The oldest attachment the plugin's filter finds and ``matches`` confirms (exact values)."""
        response = self._get(MEDIA, {**params, "context": "edit", "orderby": "id", "order": "asc",
                                     "per_page": 10, "_fields": _LOOKUP_FIELDS}, doing=doing)
        found = [a for a in response.json() if matches(a.get("meta") or {})]
        if len(found) > 1:
            log.warning("%s%s: %d attachments match (%s); using attachment %s", self._where(), doing, len(found),
                        ", ".join(str(a.get("id")) for a in found), found[0].get("id"))
        return found[0] if found else None

    # --- writing attachments ---------------------------------------------------------------

    def _keep(self, key: str, attachment: dict[str, Any], info: ObjectInfo) -> StoredObject:
        """The asset is in the library already: never a second attachment, never a new file."""
        meta = attachment.get("meta") or {}
        if meta.get("syncd_key") != key:
            self._update(attachment["id"], {"meta": {"syncd_key": key}}, f"re-key attachment to '{key}'")
            log.info("%sattachment %s of %s %s is now '%s' (was '%s')", self._where(), attachment["id"],
                     info.media_type, info.media_id, key, meta.get("syncd_key"))
        stored = _stored(key, attachment)
        if stored.sha256 != info.sha256:
            log.info("%sattachment %s keeps its file (%s bytes); the new file of %s %s (%s bytes) is not "
                     "uploaded: WordPress attachments keep their file", self._where(), attachment["id"],
                     stored.bytes, info.media_type, info.media_id, info.size)
        return stored

    def _update(self, attachment_id: int, changes: dict[str, Any], doing: str) -> None:
        response = self._send("POST", f"{MEDIA}/{attachment_id}", params={"_fields": "id"}, json=changes,
                              doing=doing)
        if response.status_code != 200:
            raise self._error(response, doing)

    def _hash_local(self, key: str, path: Path, info: ObjectInfo) -> tuple[int, str, str]:
        """Size, SHA-256 and MD5 of ``path`` in one read; refuses a file that changed since it was verified."""
        sha256, md5, size = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
        try:
            with open(path, "rb") as body:
                for chunk in _chunks(body):
                    sha256.update(chunk)
                    md5.update(chunk)
                    size += len(chunk)
        except OSError as exc:
            raise DestinationError(self._where(f"cannot upload '{key}': local file {path} is unreadable "
                                               f"({exc.strerror or exc})")) from exc
        if size != info.size or sha256.hexdigest() != info.sha256:
            raise DestinationError(self._where(
                f"cannot upload '{key}': local file {path} changed since it was verified (expected {info.size} "
                f"bytes sha256 {info.sha256}, read {size} bytes); the item will be fetched again"))
        return size, sha256.hexdigest(), md5.hexdigest()

    def refuse_size(self, key: str, size: int) -> None:
        """A file PHP would refuse is not sent (nor downloaded): WordPress fails on it without saying why (a 500)."""
        self._ensure_ready()
        if not self._limits or self._as_form(size) or self._as_raw_body(size):
            return
        settings = ", ".join(f"{name} = {human_bytes(self._limits[name], exact=True)}"
                             for name in ("upload_max_filesize", "post_max_size", "memory_limit")
                             if name in self._limits)
        largest = human_bytes(self._limits["max_upload_bytes"], exact=True)
        raise DestinationError(self._where(
            f"cannot upload '{key}': it is {human_bytes(size, exact=True)} and the site accepts form uploads up to "
            f"{largest} (PHP {settings}): raise upload_max_filesize and "
            "post_max_size (php.ini) above the largest file, and the web server's request body limit "
            "(nginx client_max_body_size, Apache LimitRequestBody); the item will be retried on a later pass"))

    def _as_form(self, size: int) -> bool:
        """Whether PHP's form limits (reported by plugin 1.1) allow a form upload of this size.

        PHP spools a form upload to disk, so its size is bounded by ``upload_max_filesize`` and
        ``post_max_size`` (what the media screen obeys too), not by memory.
        """
        limit = self._form_limit()
        return limit is not None and size <= limit

    def _as_raw_body(self, size: int) -> bool:
        """Whether a raw body fits: WordPress reads it into one PHP string, so ``memory_limit`` bounds it."""
        limit = self._raw_limit()
        return limit is not None and (limit < 0 or size <= limit)

    def _form_limit(self) -> int | None:
        """The largest file a form upload can carry beside its other fields; None: not known."""
        largest = self._limits.get("max_upload_bytes")
        return None if largest is None else largest - FORM_OVERHEAD

    def _raw_limit(self) -> int | None:
        """The largest raw body PHP's memory holds (-1: no limit); None: not known."""
        memory = self._limits.get("memory_limit")
        return memory if memory is None or memory < 0 else max(0, memory - RAW_BODY_HEADROOM)

    def _upload(self, key: str, path: Path, *, params: dict[str, str] | None = None,
                form_file: tuple[str, str] | None = None, **kwargs: Any) -> httpx.Response:
        """POST the file, streamed from disk: as the form's part ``form_file`` (name, type) names, else as the raw body.

        Two uploads that are the first of a month race in ``wp_mkdir_p``: both see no
        ``uploads/YYYY/MM``, both ``mkdir`` it, and the loser answers 500 "Unable to create
        directory" although the folder now exists. WordPress refuses before it stores anything,
        so the same request is sent again (up to ``UPLOAD_DIR_ATTEMPTS`` times); it cannot make a
        second attachment.
        """
        try:
            for attempt in stamina.retry_context(on=_UploadFolderMissing, attempts=UPLOAD_DIR_ATTEMPTS,
                                                 wait_initial=0.1, wait_max=1.0):
                with attempt, open(path, "rb") as body:
                    if form_file:
                        kwargs["files"] = {"file": (form_file[0], body, form_file[1])}
                    else:
                        kwargs["content"] = _chunks(body)
                    response = self._send("POST", MEDIA, params={"_fields": "id,meta,description", **(params or {})},
                                          doing=f"upload '{key}'", **kwargs)
                    if _upload_folder_missing(response):
                        raise _UploadFolderMissing(response)
                    return response
        except _UploadFolderMissing as missing:
            return missing.response
        except OSError as exc:
            raise DestinationError(self._where(f"cannot upload '{key}': local file {path} is unreadable "
                                               f"({exc.strerror or exc})")) from exc
        raise AssertionError("unreachable")

    # --- HTTP ------------------------------------------------------------------------------

    def _get(self, route: str, params: dict[str, Any], doing: str) -> httpx.Response:
        response = self._send("GET", route, params=params, doing=doing)
        if response.status_code != 200:
            raise self._error(response, doing)
        return response

    def _send(self, method: str, route: str, *, doing: str, params: dict[str, Any] | None = None,
              probe_api: bool = False, **kwargs: Any) -> httpx.Response:
        """One request to a REST route; 401 raises ``AuthError``, a network failure ``DestinationError``."""
        if not probe_api:
            self._ensure_ready()
        url, all_params = self._url(route, params)
        try:
            response = self._client.request(method, url, params=all_params, **kwargs)
        except httpx.TransportError as exc:
            # An upload whose answer was lost is not repeated blindly: the next try finds the
            # attachment by its identity first.
            raise DestinationError(self._where(f"cannot {doing}: no answer from the site ({exc!r}); "
                                               "the item will be retried")) from exc
        if response.status_code == 401:
            raise self._auth_error(response)
        return response

    def _url(self, route: str, params: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
        if self._rest_route:
            return f"{self.site}/", {"rest_route": route, **(params or {})}
        return f"{self.site}/wp-json{route}", dict(params or {})

    def _ensure_ready(self) -> None:
        """Once per process, before the first request: the REST API's address and the plugin."""
        if self._ready:
            return
        with self._ready_lock:
            if not self._ready:
                self._require_plugin(self._discover())
                self._ready = True

    def _discover(self) -> httpx.Response:
        """Probe the plugin's route at /wp-json/, else at /?rest_route= (a site without pretty permalinks).

        Without pretty permalinks /wp-json/ is not routed: WordPress answers with its 404 page
        or a canonical redirect, neither of them JSON.
        """
        self._rest_route = False
        response = self._probe_plugin()
        if _is_json(response) or not (response.status_code == 404 or response.is_redirect):
            return response
        self._rest_route = True
        fallback = self._probe_plugin()
        if _is_json(fallback):
            return fallback
        self._rest_route = False
        return response

    def _require_plugin(self, response: httpx.Response) -> None:
        """Raise unless the probe found the syncd-meta plugin answering for this user."""
        if response.status_code == 200 and _json(response).get("plugin") == "syncd-meta":
            self._limits = _upload_limits(_json(response))
            return
        if response.is_redirect:
            raise self._redirected(response)
        if response.status_code == 404 and _json(response).get("code") == "rest_no_route":
            raise ConfigError(self._where(
                f"the syncd-meta plugin is not installed: copy {PLUGIN_PATH} from syncd into the site's "
                "wp-content/mu-plugins/ (or install it as a plugin); without it WordPress drops syncd's "
                "identity of each asset and every run would upload everything again"),
                key=f"destinations.{self.name}.url")
        if response.status_code == 404:
            raise ConfigError(self._where("no WordPress REST API answers here (404 at /wp-json/ and at "
                                          "/?rest_route=/); check the url"), key=f"destinations.{self.name}.url")
        raise self._error(response, "use the media library")

    def _probe_plugin(self) -> httpx.Response:
        url, params = self._url(PLUGIN_ROUTE, None)
        try:
            response = self._client.get(url, params=params)
        except httpx.TransportError as exc:
            raise DestinationError(self._where(f"cannot reach the site ({exc!r})")) from exc
        if response.status_code == 401:
            raise self._auth_error(response)
        return response

    # --- errors ----------------------------------------------------------------------------

    def _where(self, message: str = "") -> str:
        return f"WordPress destination '{self.name}' at {self.site}: {message}"

    def _redirected(self, response: httpx.Response) -> ConfigError:
        target = response.headers.get("location", "?")
        return ConfigError(self._where(f"the site redirects {response.request.method} {response.request.url.path} "
                                       f"to {target}; set url to the address WordPress itself answers at "
                                       "(Settings > General > WordPress Address)"), key=f"destinations.{self.name}.url")

    def _auth_error(self, response: httpx.Response) -> AuthError:
        """401: the password, the user name, or Application Passwords being off; never the password itself."""
        reason = (f"WordPress refused the Application Password of user '{self.username}' (HTTP 401): check the "
                  "user name and the password the destination's password_env/password_file provides "
                  "(Users > Profile > Application Passwords; the account's login password is not accepted)")
        if not self._application_passwords_available():
            reason += ("; this site does not offer Application Passwords at all: they need HTTPS, or "
                       "WP_ENVIRONMENT_TYPE 'local' for a site on plain http, and no plugin disabling them")
        else:
            reason += "; Application Passwords need HTTPS (or WP_ENVIRONMENT_TYPE 'local' on plain http)"
        return AuthError(self._where(reason))

    def _application_passwords_available(self) -> bool:
        """Whether the REST index advertises Application Passwords (True when it cannot tell)."""
        url, params = self._url("/", {"_fields": "authentication"})
        try:
            response = self._client.get(url, params=params, auth=None, timeout=10)
            authentication = _json(response).get("authentication")
        except httpx.HTTPError:
            return True
        if response.status_code != 200 or authentication is None:
            return True
        return isinstance(authentication, dict) and "application-passwords" in authentication

    def _error(self, response: httpx.Response, doing: str, *, key: str | None = None, ext: str = "",
               size: int | None = None) -> DestinationError:
        """A refused or failed request as a message naming the cause and what to change."""
        status = response.status_code
        body = _json(response)
        code = str(body.get("code") or "")
        message = (_plain(str(body.get("message") or "")) or _plain(response.text[:300])).rstrip(".")
        said = f"HTTP {status}" + (f" {code}" if code else "") + (f": {message}" if message else "")
        if status == 403:
            hint = (f"user '{self.username}' may not do this: give the user the Author role or higher (the "
                    "upload_files capability); Authors may change only attachments they uploaded, Editors any")
        elif code in _UPLOAD_ERRORS and "file type" in message:
            shown = f".{ext}" if ext else "this type of"
            hint = (f"WordPress does not accept {shown} files for this user; allow the type with an "
                    "upload_mimes filter, e.g. in a must-use plugin: add_filter('upload_mimes', "
                    f"fn($types) => $types + ['{ext or 'ext'}' => '{content_type_for(ext)}']); "
                    "(README, section WordPress)")
        elif status == 413 or "upload_max_filesize" in message or "post_max_size" in message or (
                code in ("rest_upload_no_data", "rest_upload_no_content_disposition") and size):
            # (PHP drops a form body over post_max_size: WordPress then finds no file in it)
            hint = ("the upload" + (f" of {size} bytes" if size else "") + " is larger than the server "
                    "accepts: raise PHP's upload_max_filesize and post_max_size (php.ini) and the web server's "
                    "request body limit (nginx client_max_body_size, Apache LimitRequestBody)")
        elif _upload_folder_missing(response):
            hint = (f"WordPress could not create its uploads folder {UPLOAD_DIR_ATTEMPTS} times in a row: make "
                    "wp-content/uploads writable by the web server's user (e.g. chown -R www-data "
                    "wp-content/uploads) and check the disk is not full; the item will be retried on a later pass")
        elif code == "rest_upload_hash_mismatch":
            hint = "the bytes changed on the way (Content-MD5 mismatch); the item will be retried"
        elif status >= 500:
            hint = "the site failed (see its PHP error log); the item will be retried on a later pass"
        else:
            hint = "the item will be retried on a later pass"
        target = f" '{key}'" if key and key not in doing else ""
        return DestinationError(self._where(f"cannot {doing}{target}: {said}; {hint}"))


def _upload_limits(status: dict[str, Any]) -> dict[str, int]:
    """The byte limits the plugin's status reports (none from a plugin before 1.1)."""
    limits = {name: value for name in ("max_upload_bytes", "upload_max_filesize", "post_max_size")
              if isinstance(value := status.get(name), int) and value > 0}
    memory = status.get("memory_limit")
    if limits.get("max_upload_bytes") and isinstance(memory, int) and memory != 0:
        limits["memory_limit"] = memory  # -1: none
    return limits


class _UploadFolderMissing(Exception):
    def __init__(self, response: httpx.Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def _upload_folder_missing(response: httpx.Response) -> bool:
    """WordPress's 500 for an uploads folder it could not create (a race between uploads, or permissions)."""
    if response.status_code < 500:
        return False
    body = _json(response)
    return body.get("code") in _UPLOAD_ERRORS and "Unable to create directory" in str(
        body.get("message") or "")


# --- what the attachment says ---------------------------------------------------------------


def agency_name(source: str) -> str:
    """The agency as a credit line names it, from the source name ("shutterstock" → "Shutterstock")."""
    lowered = source.lower()
    for known, shown in _AGENCIES.items():
        if known in lowered:
            return shown
    return source


def credit_line(document: dict[str, Any]) -> str:
    """The caption an editor would write: "Photo: contributor 1603781 / Shutterstock"."""
    media_type = str(document.get("media_type") or "")
    medium = _MEDIUM.get(media_type, "Media")
    agency = agency_name(str(document.get("source") or ""))
    particular = document.get(media_type) if isinstance(document.get(media_type), dict) else {}
    byline = str((particular or {}).get("byline") or "").strip()
    contributor = str(document.get("contributor") or "").strip()
    if byline:
        return f"{medium}: {byline} / {agency}"
    if contributor:
        return f"{medium}: contributor {contributor} / {agency}"
    return f"{medium}: {agency}"


def first_metadata(document: dict[str, Any]) -> dict[str, str]:
    """Title, caption and (for images) alt text, written once when syncd completes the attachment."""
    description = " ".join(str(document.get("description") or "").split())
    media_type = str(document.get("media_type") or "")
    fallback = f"{agency_name(str(document.get('source') or ''))} {media_type.replace('_', ' ')} {document.get('media_id')}"
    fields = {"title": _shorten(description, TITLE_LIMIT) or fallback, "caption": credit_line(document)}
    if media_type in _IMAGE_TYPES:
        fields["alt_text"] = description or fallback
    return fields


def license_block(document: dict[str, Any]) -> str:
    """The description's syncd block: the asset and every license of it, one per line."""
    media_type = str(document.get("media_type") or "")
    agency = agency_name(str(document.get("source") or ""))
    lines = [f"{agency} {media_type.replace('_', ' ')} {document.get('media_id')}"]
    for entry in document.get("licenses") or []:
        if not isinstance(entry, dict):
            continue
        details = [str(entry.get("license") or "license").replace("_", " ") + " license"]
        if entry.get("size"):
            details.append(str(entry["size"]))
        licensed = _date(entry.get("licensed_at"))
        if licensed:
            details.append(f"licensed {licensed}")
        lines.append(f"License {entry.get('id')}: {', '.join(details)}")
    return LICENSES_BEGIN + "\n" + "\n".join(lines) + "\n" + LICENSES_END


def merge_description(current: str, block: str) -> str:
    """``current`` with its syncd block replaced by ``block`` (appended when it has none)."""
    start = current.find(LICENSES_BEGIN)
    end = current.find(LICENSES_END, start + 1) if start >= 0 else -1
    if start >= 0 and end >= 0:
        return current[:start] + block + current[end + len(LICENSES_END):]
    return f"{current.rstrip()}\n\n{block}" if current.strip() else block


# --- helpers ----------------------------------------------------------------------------------


def _site_url(name: str, url: str) -> str:
    parts = urlsplit(url.strip())
    key = f"destinations.{name}.url"
    if parts.username or parts.password or parts.query or parts.fragment:
        # Checked first, and the url not echoed: it may hold a password.
        raise ConfigError("the url must be the site address only, without credentials, query or fragment; "
                          "put the user in username and the password in password_env or password_file", key=key)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{url!r} is not a site address such as https://example.com", key=key)
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ConfigError(f"{url!r} uses plain http, which syncd sends only to loopback: use https "
                          "(the Application Password would travel in clear text)", key=key)
    return url.strip().rstrip("/")


def _stored(key: str, attachment: dict[str, Any]) -> StoredObject:
    meta = attachment.get("meta") or {}
    sha256 = meta.get("syncd_sha256")
    try:
        size = int(meta.get("syncd_bytes") or 0)
    except (TypeError, ValueError):
        size = 0
    valid = isinstance(sha256, str) and _SHA256_HEX.match(sha256)
    return StoredObject(key=key, bytes=size, sha256=sha256 if valid else None)


def _chunks(body: Any) -> Iterator[bytes]:
    while chunk := body.read(CHUNK):
        yield chunk


def _file_name(key: str) -> str:
    """The last segment of the key, safe inside a quoted header parameter."""
    name = key.rsplit("/", 1)[-1]
    return "".join("_" if c in '"\\' or ord(c) < 0x20 or c == "\x7f" else c for c in name) or "asset"


def _raw(field: Any) -> str:
    if isinstance(field, dict):
        return str(field.get("raw") or "")
    return str(field or "")


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0].rstrip(",;:.-")
    return cut + "…"


def _date(value: Any) -> str:
    if not value:
        return ""
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).strftime("%d %b %Y").lstrip("0")
    except ValueError:
        return str(value)


def _is_json(response: httpx.Response) -> bool:
    return "json" in response.headers.get("content-type", "")


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _plain(text: str) -> str:
    """An error message without HTML tags and runs of whitespace."""
    return " ".join(re.sub(r"<[^>]+>", " ", text).split())
