"""S3 destination: assets and sidecars as objects in a bucket under a prefix (AWS or compatible)."""

from __future__ import annotations

import base64
import logging
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

import boto3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore import exceptions as boto_errors
from botocore.config import Config

from syncd.destinations.base import (
    SIDECAR_SUFFIX,
    Destination,
    ObjectInfo,
    StoredObject,
)
from syncd.errors import ConfigError, DestinationError

log = logging.getLogger(__name__)

MIB = 1024 * 1024
PART_SIZE = 8 * MIB
# Sized for the engine's worker threads times the transfer threads of each upload
# (TRANSFER_THREADS); a smaller pool makes urllib3 drop and reopen connections.
MAX_POOL_CONNECTIONS = 32
TRANSFER_THREADS = 4
CONNECT_TIMEOUT = 10  # seconds; botocore's 60 s times 5 attempts hangs on a black-holed host
# AWS caps all user metadata of an object at 2 KB; the sidecar keeps the full values.
METADATA_VALUE_LIMIT = 256
# Printable ASCII except space and "%": kept as-is in metadata, everything else is
# percent-encoded (UTF-8), so urllib.parse.unquote restores the original value.
_METADATA_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "%")
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_TRANSPORT_ERRORS = (
    boto_errors.BotoCoreError,
    boto_errors.ClientError,
    S3UploadFailedError,
    OSError,
)
_UNREACHABLE = (boto_errors.ConnectionError, boto_errors.HTTPClientError)

# What to do about the error codes an operator meets in practice.
_HINTS = {
    "AccessDenied": "grant these credentials s3:PutObject, s3:GetObject and s3:ListBucket",
    "NoSuchBucket": "create the bucket or fix the destination's bucket",
    "InvalidAccessKeyId": "the access key is unknown to the server; check the credentials",
    "SignatureDoesNotMatch": "the secret key is wrong; check the credentials",
    "BadDigest": "the bytes changed on the way; the item will be retried",
    "XAmzContentSHA256Mismatch": "the bytes changed on the way; the item will be retried",
}
_CREDENTIALS_HELP = (
    "no AWS credentials found; syncd uses boto3's usual chain: set AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE (a profile in ~/.aws/credentials), or run with "
    "an instance or pod role"
)


class S3Destination(Destination):
    """Stores assets as S3 objects with Content-Type, syncd-* metadata and a SHA-256 checksum."""

    kind: ClassVar[str] = "s3"
    verifies_checksum: ClassVar[bool] = True

    def __init__(
        self,
        name: str,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region_name: str | None = None,
        multipart_threshold: int = 8 * MIB,
        client: Any = None,
    ) -> None:
        super().__init__(name)
        self.bucket = bucket
        self.prefix = prefix
        self.endpoint_url = endpoint_url or None  # the config writes "" for "AWS itself"
        self.multipart_threshold = multipart_threshold
        # An injected client belongs to the caller, who closes it.
        self._owns_client = client is None
        self._may_list_uploads = True  # False once the credentials were refused the listing
        # Built once here: boto3 clients are thread-safe, sessions are not.
        self.client = client if client is not None else _make_client(self.endpoint_url, region_name)
        self._transfer_config = TransferConfig(
            multipart_threshold=multipart_threshold,
            multipart_chunksize=PART_SIZE,
            max_concurrency=TRANSFER_THREADS,
            use_threads=True,
        )

    # --- the Destination operations ---------------------------------------------------

    def stat(self, key: str) -> StoredObject | None:
        """Size and the ``syncd-sha256`` metadata of the object, or None if absent."""
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._object_key(key))
        except boto_errors.ClientError as exc:
            if _status(exc) == 404:
                return None
            hint = "(S3 answers 403 for a missing key when s3:ListBucket is not granted)"
            raise self._error(f"cannot stat '{key}' {hint}", exc) from exc
        except _TRANSPORT_ERRORS as exc:
            raise self._error(f"cannot stat '{key}'", exc) from exc
        sha256 = head.get("Metadata", {}).get("syncd-sha256")
        valid = isinstance(sha256, str) and _SHA256_HEX.match(sha256)
        return StoredObject(key=key, bytes=head["ContentLength"], sha256=sha256 if valid else None)

    def put(self, key: str, path: Path, info: ObjectInfo) -> StoredObject:
        """Upload ``path`` (multipart above the threshold); nothing partial is left on failure."""
        object_key = self._object_key(key)
        size = self._local_size(key, path, info)
        multipart = size >= self.multipart_threshold
        if multipart:
            # An upload killed mid-way (kill -9) leaves parts that cost storage forever.
            self._abort_incomplete_uploads(object_key)
        try:
            if multipart:
                self.client.upload_file(
                    str(path),
                    self.bucket,
                    object_key,
                    ExtraArgs=self._upload_args(info, multipart),
                    Config=self._transfer_config,
                )
            else:
                # One PUT; upload_file would start a transfer manager and its threads per call.
                with open(path, "rb") as body:
                    self.client.put_object(
                        Bucket=self.bucket, Key=object_key, Body=body, **self._upload_args(info, multipart)
                    )
        except BaseException as exc:
            # s3transfer aborts its own upload on failure, but that abort can fail too.
            if multipart:
                self._abort_incomplete_uploads(object_key)
            if isinstance(exc, _TRANSPORT_ERRORS):
                raise self._error(f"cannot upload '{key}'", exc) from exc
            raise
        return StoredObject(key=key, bytes=size, sha256=info.sha256)

    def put_sidecar(self, key: str, document: bytes) -> None:
        """Store ``key.json`` with one PUT (atomic on S3)."""
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=self._object_key(key + SIDECAR_SUFFIX),
                Body=document,
                ContentType="application/json",
                ChecksumAlgorithm="SHA256",
            )
        except _TRANSPORT_ERRORS as exc:
            raise self._error(f"cannot store the sidecar of '{key}'", exc) from exc

    def get_sidecar(self, key: str) -> bytes | None:
        """The bytes of ``key.json``, or None."""
        return self._read_object(self._object_key(key + SIDECAR_SUFFIX), key)

    def iter_sidecars(self) -> Iterator[tuple[str, bytes]]:
        """Every ``*.json`` under the prefix, in key order, as (asset key, bytes)."""
        for object_key in self._list_keys():
            if not object_key.endswith(SIDECAR_SUFFIX):
                continue
            asset_key = object_key[len(self.prefix) : -len(SIDECAR_SUFFIX)]
            if not asset_key:
                continue
            document = self._read_object(object_key, asset_key)
            if document is not None:  # None: deleted while we listed
                yield asset_key, document

    def check(self) -> None:
        """Prove the bucket exists and is writable by putting and deleting a probe object."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except _TRANSPORT_ERRORS as exc:
            raise self._config_error(exc, action="reach") from exc
        probe_key = f"{self.prefix}.syncd-check-{uuid.uuid4()}"
        try:
            written = self.client.put_object(Bucket=self.bucket, Key=probe_key, Body=b"")
        except _TRANSPORT_ERRORS as exc:
            raise self._config_error(exc, action="write to") from exc
        self._remove_probe(probe_key, written.get("VersionId"))

    def close(self) -> None:
        """Close the connection pool of the client this destination created."""
        if self._owns_client:
            self.client.close()

    # --- helpers -----------------------------------------------------------------------

    def _object_key(self, key: str) -> str:
        return self.prefix + key

    def _local_size(self, key: str, path: Path, info: ObjectInfo) -> int:
        try:
            size = path.stat().st_size
        except OSError as exc:
            message = (
                f"cannot upload '{key}': local file {path} is unreadable ({exc.strerror or exc})"
            )
            raise DestinationError(self._where() + message) from exc
        if size != info.size:
            message = (
                f"cannot upload '{key}': local file {path} has {size} bytes, "
                f"{info.size} were verified; the item will be fetched again"
            )
            raise DestinationError(self._where() + message)
        return size

    def _upload_args(self, info: ObjectInfo, multipart: bool) -> dict[str, Any]:
        args: dict[str, Any] = {
            "ContentType": info.content_type or "application/octet-stream",
            "Metadata": {
                "syncd-source": ascii_metadata(info.source),
                "syncd-media-id": ascii_metadata(info.media_id),
                "syncd-license-id": ascii_metadata(info.license_id),
                "syncd-sha256": ascii_metadata(info.sha256),
            },
            # The client hashes what it sends and the server checks it (per part when
            # multipart); moto stores the checksum without checking it.
            "ChecksumAlgorithm": "SHA256",
        }
        if not multipart and _SHA256_HEX.match(info.sha256):
            # A single PUT can carry the digest verified by the engine itself, so the
            # server refuses any byte that differs from what was downloaded. Multipart
            # SHA-256 checksums are composite, so there the per-part checks must do.
            args["ChecksumSHA256"] = base64.b64encode(bytes.fromhex(info.sha256)).decode()
        return args

    def _abort_incomplete_uploads(self, object_key: str) -> None:
        """Abort every incomplete multipart upload of exactly ``object_key``.

        The engine never uploads one key from two places at once, so any upload found
        here is a dead one. Failing to clean up does not fail the item: a bucket
        lifecycle rule (AbortIncompleteMultipartUpload) is the backstop.
        """
        if not self._may_list_uploads:
            return
        try:
            paginator = self.client.get_paginator("list_multipart_uploads")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=object_key):
                for upload in page.get("Uploads", []):
                    if upload["Key"] == object_key:
                        self.client.abort_multipart_upload(
                            Bucket=self.bucket, Key=object_key, UploadId=upload["UploadId"]
                        )
        except _TRANSPORT_ERRORS as exc:
            if isinstance(exc, boto_errors.ClientError) and _status(exc) == 403:
                self._may_list_uploads = False  # warn once, not on every large upload
            log.warning(
                "%scannot abort incomplete uploads of '%s': %s", self._where(), object_key, exc
            )

    def _read_object(self, object_key: str, key: str) -> bytes | None:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=object_key)
            body: bytes = response["Body"].read()
        except boto_errors.ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                return None
            raise self._error(f"cannot read the sidecar of '{key}'", exc) from exc
        except _TRANSPORT_ERRORS as exc:
            raise self._error(f"cannot read the sidecar of '{key}'", exc) from exc
        return body

    def _list_keys(self) -> Iterator[str]:
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for entry in page.get("Contents", []):
                    yield entry["Key"]
        except _TRANSPORT_ERRORS as exc:
            raise self._error(f"cannot list objects under '{self.prefix}'", exc) from exc

    def _remove_probe(self, probe_key: str, version_id: str | None) -> None:
        """Delete the check probe; a versioned bucket needs the version deleted too."""
        try:
            if version_id and version_id != "null":
                self.client.delete_object(Bucket=self.bucket, Key=probe_key, VersionId=version_id)
            else:
                self.client.delete_object(Bucket=self.bucket, Key=probe_key)
        except _TRANSPORT_ERRORS as exc:
            # syncd never deletes during a sync, so missing delete permission is no reason
            # to fail the check; but the operator should know something was left behind.
            log.warning(
                "%scheck wrote probe object '%s' but cannot delete it (%s); delete it by hand",
                self._where(),
                probe_key,
                _describe_cause(exc),
            )

    def _where(self) -> str:
        endpoint = urlsplit(self.client.meta.endpoint_url)
        # Never echo user:password@ should someone put credentials into endpoint_url.
        shown = endpoint._replace(netloc=endpoint.netloc.rpartition("@")[2]).geturl()
        return f"S3 bucket '{self.bucket}' at {shown}: "

    def _error(self, doing: str, exc: BaseException) -> DestinationError:
        return DestinationError(f"{self._where()}{doing}: {_describe_cause(exc)}")

    def _config_error(self, exc: BaseException, action: str) -> ConfigError:
        """Turn a failure of check() into a message naming the config key to fix."""
        destination = f"destinations.{self.name}"
        where = self._where()
        if isinstance(exc, boto_errors.NoCredentialsError):
            return ConfigError(f"{where}{_CREDENTIALS_HELP}", key=destination)
        if isinstance(exc, _UNREACHABLE):
            message = f"{where}cannot connect ({exc}); check endpoint_url and the network"
            return ConfigError(message, key=f"{destination}.endpoint_url")
        if isinstance(exc, boto_errors.ClientError):
            return _client_config_error(where, exc, action, destination)
        if isinstance(exc, boto_errors.ParamValidationError):
            return ConfigError(f"{where}{exc}", key=f"{destination}.bucket")
        return ConfigError(f"{where}cannot {action} the bucket: {exc}", key=destination)


def ascii_metadata(value: str) -> str:
    """``value`` as S3 user metadata: printable ASCII, percent-encoded, at most 256 chars."""
    pieces: list[str] = []
    length = 0
    # Character by character, so truncation never splits a character's UTF-8 escapes;
    # "replace" turns a lone surrogate (valid JSON, invalid UTF-8) into "?".
    for character in value:
        piece = quote(character, safe=_METADATA_SAFE, errors="replace")
        length += len(piece)
        if length > METADATA_VALUE_LIMIT:
            break
        pieces.append(piece)
    return "".join(pieces)


def _make_client(endpoint_url: str | None, region_name: str | None) -> Any:
    options: dict[str, Any] = {
        "retries": {"max_attempts": 5, "mode": "standard"},
        "max_pool_connections": MAX_POOL_CONNECTIONS,
        "connect_timeout": CONNECT_TIMEOUT,
    }
    if endpoint_url:
        # S3-compatible servers rarely serve virtual-hosted bucket names.
        options["s3"] = {"addressing_style": "path"}
    session = boto3.session.Session(region_name=region_name)  # a private session per client
    return session.client("s3", endpoint_url=endpoint_url, config=Config(**options))


def _client_config_error(
    where: str, exc: boto_errors.ClientError, action: str, destination: str
) -> ConfigError:
    status, code = _status(exc), _code(exc)
    if status == 404 or code == "NoSuchBucket":
        message = f"{where}the bucket does not exist; create it or fix the bucket name"
        return ConfigError(message, key=f"{destination}.bucket")
    if status == 403:
        message = (
            f"{where}the credentials lack access to the bucket ({code}); grant them "
            "s3:ListBucket, s3:GetObject and s3:PutObject on it"
        )
        return ConfigError(message, key=f"{destination}.bucket")
    return ConfigError(
        f"{where}cannot {action} the bucket: {_describe_cause(exc)}", key=destination
    )


def _describe_cause(exc: BaseException) -> str:
    """``Code: message (what to do)`` for S3 errors, the exception text otherwise."""
    client_error = exc if isinstance(exc, boto_errors.ClientError) else exc.__context__
    if not isinstance(client_error, boto_errors.ClientError):
        if isinstance(exc, boto_errors.NoCredentialsError):
            return _CREDENTIALS_HELP
        return str(exc) or type(exc).__name__
    code = _code(client_error)
    message = client_error.response.get("Error", {}).get("Message", "")
    hint = _HINTS.get(code)
    return f"{code}: {message}" + (f" ({hint})" if hint else "")


def _code(exc: boto_errors.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: boto_errors.ClientError) -> int | None:
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return int(status) if status is not None else None
