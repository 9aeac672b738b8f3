"""Filesystem destination: assets and sidecars as plain files under one root, written atomically."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import stat as stat_module
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, ClassVar

from syncd.destinations.base import (
    SIDECAR_SUFFIX,
    Destination,
    ObjectInfo,
    StoredObject,
)
from syncd.errors import ConfigError, DestinationError
from syncd.sizes import human_bytes

CHUNK_SIZE = 1024 * 1024
TEMP_MARKER = ".syncd-tmp-"
MAX_NAME_BYTES = 255  # NAME_MAX on every filesystem we expect to write to
# A temp file is ".<basename>.syncd-tmp-<token>"; anything shaped like that is ours.
_TEMP_NAME = re.compile(r"^\..*\.syncd-tmp-[A-Za-z0-9_-]+$", re.DOTALL)
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")

_Verifier = Callable[[int, str], None]  # raises to stop a write before it is published


class FilesystemDestination(Destination):
    """Stores assets under a local or mounted directory; every write is temp file, fsync, rename."""

    kind: ClassVar[str] = "filesystem"
    verifies_checksum: ClassVar[bool] = False

    # Sweeping a directory for abandoned temp files lists the whole directory, and the
    # default template puts every asset of a media type into one directory. So each
    # directory is swept at most once per interval per instance rather than on every put;
    # a temp file left by a killed process is gone by the next put into its directory
    # after that (a fresh process sweeps on its first put).
    sweep_interval: ClassVar[float] = 60.0

    def __init__(self, name: str, path: Path) -> None:
        super().__init__(name)
        self.root = Path(path)
        self._last_sweep: dict[Path, float] = {}

    # --- the Destination operations ---------------------------------------------------

    def stat(self, key: str) -> StoredObject | None:
        """Size from the file; sha256 from a sidecar that vouches for it, else computed."""
        target = self._target(key)
        try:
            file_stat = target.stat()
            if not stat_module.S_ISREG(file_stat.st_mode):
                raise DestinationError(self._describe(key, "is not a regular file; remove it"))
            sha256 = _sha256_from_sidecar(target, file_stat) or _sha256_of_file(target)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise DestinationError(self._describe(key, f"cannot read it: {_reason(exc)}")) from exc
        return StoredObject(key=key, bytes=file_stat.st_size, sha256=sha256)

    def put(self, key: str, path: Path, info: ObjectInfo) -> StoredObject:
        """Copy ``path`` to ``key``; if its bytes differ from ``info``, keep the old file."""
        target = self._target(key)

        def verify(size: int, sha256: str) -> None:
            # The file was verified before put; if it changed since, do not publish it.
            if size != info.size or sha256 != info.sha256:
                raise DestinationError(
                    self._describe(
                        key,
                        f"local file {path} changed since it was verified "
                        f"(expected {info.size} bytes sha256 {info.sha256}, read {size} bytes "
                        f"sha256 {sha256}); the item will be fetched again",
                    )
                )

        try:
            source = open(path, "rb")  # noqa: SIM115 - closed by the ``with`` below
        except OSError as exc:
            message = f"cannot be stored: local file {path} is unreadable ({_reason(exc)})"
            raise DestinationError(self._describe(key, message)) from exc
        try:
            with source:
                size, sha256 = self._write_atomically(target, source, verify)
        except OSError as exc:
            raise DestinationError(self._describe(key, f"cannot write it: {_reason(exc)}")) from exc
        return StoredObject(key=key, bytes=size, sha256=sha256)

    def refuse_size(self, key: str, size: int) -> None:
        """A file larger than the free space under the root is not downloaded for nothing."""
        existing = next((p for p in (self.root, *self.root.parents) if p.is_dir()), None)
        if existing is None:
            return
        free = shutil.disk_usage(existing).free
        if size > free:
            raise DestinationError(self._describe(key, (
                f"cannot be stored: it is {human_bytes(size)} and {human_bytes(free)} is free there; free space "
                "or move the library to a larger disk; the item will be retried on a later pass")))

    def put_sidecar(self, key: str, document: bytes) -> None:
        """Write ``key.json`` atomically."""
        target = self._sidecar_target(key)
        try:
            self._write_atomically(target, io.BytesIO(document))
        except OSError as exc:
            message = f"cannot write its sidecar: {_reason(exc)}"
            raise DestinationError(self._describe(key, message)) from exc

    def get_sidecar(self, key: str) -> bytes | None:
        """The bytes of ``key.json``, or None."""
        target = self._sidecar_target(key)
        try:
            return target.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            message = f"cannot read its sidecar: {_reason(exc)}"
            raise DestinationError(self._describe(key, message)) from exc

    def iter_sidecars(self) -> Iterator[tuple[str, bytes]]:
        """Every ``*.json`` under the root, in sorted order, as (asset key, bytes)."""
        if not self.root.is_dir():
            return
        for sidecar in self._walk_sidecars():
            relative = sidecar.relative_to(self.root).as_posix()
            try:
                document = sidecar.read_bytes()
            except FileNotFoundError:
                continue  # replaced or removed while we walked
            except OSError as exc:
                message = f"cannot read sidecar {sidecar}: {_reason(exc)}"
                raise DestinationError(f"filesystem destination '{self.name}': {message}") from exc
            yield relative[: -len(SIDECAR_SUFFIX)], document

    def check(self) -> None:
        """Create the root if needed and prove it is writable with a probe file."""
        config_key = f"destinations.{self.name}.path"
        try:
            _make_dirs(self.root)
            # The probe's name has the temp-file shape, so a sweep removes it if we die here.
            descriptor, probe = _create_temp(self.root / ".syncd-check")
            os.close(descriptor)
            os.unlink(probe)
        except OSError as exc:
            raise ConfigError(
                f"directory {self.root} is not writable ({_reason(exc)}); create it, "
                "fix its permissions, or point the path at a writable directory",
                key=config_key,
            ) from exc

    # --- keys ----------------------------------------------------------------------------

    def _target(self, key: str) -> Path:
        """The file for ``key``; refuses any key that would land outside the root."""
        parts = key.split("/")
        if not key or "\x00" in key or any(part in ("", ".", "..") for part in parts):
            raise DestinationError(self._describe(key, "is not a safe relative key; refused"))
        root = self.root.resolve()
        target = root.joinpath(*parts)
        # Defence in depth: the renderer already makes safe keys, but a symlink inside the
        # root could still point elsewhere, so judge the fully resolved path.
        resolved = Path(os.path.realpath(target))
        if resolved == root or not resolved.is_relative_to(root):
            raise DestinationError(self._describe(key, f"resolves outside {root}; refused"))
        return target

    def _sidecar_target(self, key: str) -> Path:
        self._target(key)  # the asset key itself must be valid, not just key + ".json"
        return self._target(key + SIDECAR_SUFFIX)

    def _describe(self, key: str, problem: str) -> str:
        return f"filesystem destination '{self.name}' at {self.root}: '{key}' {problem}"

    # --- atomic writes -------------------------------------------------------------------

    def _write_atomically(
        self,
        target: Path,
        source: BinaryIO,
        verify: _Verifier | None = None,
    ) -> tuple[int, str]:
        """Copy ``source`` to a temp sibling, fsync, verify, rename onto ``target``, fsync dir."""
        directory = target.parent
        _make_dirs(directory)
        self._sweep_if_due(directory)
        descriptor, temp = _create_temp(target)
        try:
            with os.fdopen(descriptor, "wb") as out:
                size, sha256 = _copy_hashing(source, out)
                out.flush()
                os.fsync(out.fileno())
                if verify is not None:
                    verify(size, sha256)
                os.replace(temp, target)
        except BaseException:
            _unlink_quietly(temp)
            raise
        _fsync_directory(directory)
        return size, sha256

    def _sweep_if_due(self, directory: Path) -> None:
        now = time.monotonic()
        # Unlocked on purpose: two threads sweeping the same directory at once is harmless.
        if now - self._last_sweep.get(directory, -self.sweep_interval) < self.sweep_interval:
            return
        _remove_abandoned_temps(directory)
        self._last_sweep[directory] = now

    def _walk_sidecars(self) -> Iterator[Path]:
        def fail(exc: OSError) -> None:
            message = f"cannot list {exc.filename}: {_reason(exc)}"
            raise DestinationError(f"filesystem destination '{self.name}': {message}") from exc

        for directory, subdirectories, filenames in os.walk(self.root, onerror=fail):
            subdirectories.sort()
            for filename in sorted(filenames):
                if _is_sidecar_name(filename):
                    yield Path(directory, filename)


def _is_sidecar_name(filename: str) -> bool:
    # No asset name carries the temp marker, so a name with it is a temp file.
    is_json = filename.endswith(SIDECAR_SUFFIX) and filename != SIDECAR_SUFFIX
    return is_json and TEMP_MARKER not in filename


PENDING_MARKER = ".syncd-new"  # a temp file in its first microseconds, before its lock


def _temp_prefix(basename: str) -> str:
    """``.<basename>.syncd-tmp-``, shortened so the full temp name stays within NAME_MAX."""
    room = MAX_NAME_BYTES - len(f".{TEMP_MARKER}") - 16  # 16 = the random token
    encoded = basename.encode("utf-8", "surrogateescape")[:room]
    return f".{encoded.decode('utf-8', 'ignore')}{TEMP_MARKER}"


def _create_temp(target: Path) -> tuple[int, Path]:
    """Create and lock a fresh temp sibling of ``target``; returns (descriptor, path)."""
    while True:
        token = secrets.token_hex(8)
        # Created under a name no sweep looks at, locked, and only then given the temp name:
        # a sweeping process (another syncd on the same library) can never catch a temp file
        # between its creation and its writer's lock.
        pending = target.with_name(f".{token}{PENDING_MARKER}")
        try:
            # 0o666 and not mkstemp's 0o600: library files get the operator's umask,
            # like any other file they create.
            descriptor = os.open(pending, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        except FileExistsError:
            continue
        # The lock marks the temp file as live; a sweep only removes unlocked ones, and
        # the kernel drops the lock when its writer dies.
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        temp = target.with_name(_temp_prefix(target.name) + token)
        os.rename(pending, temp)
        return descriptor, temp


def _remove_abandoned_temps(directory: Path) -> None:
    """Remove temp files in ``directory`` whose writer is gone (nobody holds their lock)."""
    try:
        entries = [entry for entry in os.scandir(directory) if _TEMP_NAME.match(entry.name)]
    except FileNotFoundError:
        return
    for entry in entries:
        if entry.is_file(follow_symlinks=False):
            _remove_if_unlocked(Path(entry.path))


def _remove_if_unlocked(temp: Path) -> None:
    try:
        descriptor = os.open(temp, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return  # gone already, or not ours to open
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        return  # a live writer holds it
    try:
        _unlink_quietly(temp)
    finally:
        os.close(descriptor)


def _copy_hashing(source: BinaryIO, out: BinaryIO) -> tuple[int, str]:
    """Stream ``source`` into ``out`` in 1 MiB chunks; returns (bytes, sha256 hex)."""
    digest = hashlib.sha256()
    size = 0
    while chunk := source.read(CHUNK_SIZE):
        digest.update(chunk)
        out.write(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def _make_dirs(directory: Path) -> None:
    """``mkdir -p`` that also fsyncs each parent, so new directories survive a crash."""
    missing: list[Path] = []
    while not directory.is_dir():
        missing.append(directory)
        if directory.parent == directory:
            break
        directory = directory.parent
    for new_directory in reversed(missing):
        try:
            new_directory.mkdir()
        except FileExistsError:
            if not new_directory.is_dir():
                raise
        _fsync_directory(new_directory.parent)


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _sha256_from_sidecar(target: Path, file_stat: os.stat_result) -> str | None:
    """The sidecar's ``file.sha256`` if it describes this very file, else None."""
    sidecar = target.with_name(target.name + SIDECAR_SUFFIX)
    try:
        sidecar_stat = sidecar.stat()
        document = json.loads(sidecar.read_bytes())
    except (OSError, ValueError):
        return None
    described = document.get("file") if isinstance(document, dict) else None
    if not isinstance(described, dict) or described.get("bytes") != file_stat.st_size:
        return None
    sha256 = described.get("sha256")
    if not isinstance(sha256, str) or not _SHA256_HEX.match(sha256):
        return None
    # The engine writes the sidecar after the file; a file newer than its sidecar was
    # replaced since, and the sidecar may describe the old bytes.
    if sidecar_stat.st_mtime_ns < file_stat.st_mtime_ns:
        return None
    return sha256


def _sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)
