"""File formats: extension ↔ content type, and recognising a file by its first bytes."""

from __future__ import annotations

CONTENT_TYPES: dict[str, str] = {
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "tif": "image/tiff",
    "tiff": "image/tiff",
    "webp": "image/webp",
    "eps": "application/postscript",
    "svg": "image/svg+xml",
    "mp4": "video/mp4",
    "mov": "video/quicktime",
    "webm": "video/webm",
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "aiff": "audio/aiff",
    "flac": "audio/flac",
    "zip": "application/zip",
}
_EXTENSIONS = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/gif": "gif",
    "image/tiff": "tif",
    "image/webp": "webp",
    "application/postscript": "eps",
    "image/svg+xml": "svg",
    "video/mp4": "mp4",
    "video/quicktime": "mov",
    "video/webm": "webm",
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/mpeg": "mp3",
    "audio/flac": "flac",
    "application/zip": "zip",
}
_MAGIC: list[tuple[bytes, int, str]] = [
    (b"\xff\xd8\xff", 0, "jpg"),
    (b"\x89PNG\r\n\x1a\n", 0, "png"),
    (b"GIF8", 0, "gif"),
    (b"%!PS", 0, "eps"),
    (b"\xc5\xd0\xd3\xc6", 0, "eps"),  # DOS EPS binary header
    (b"ftypqt", 4, "mov"),
    (b"ftyp", 4, "mp4"),
    (b"WAVE", 8, "wav"),
    (b"ID3", 0, "mp3"),
    (b"\xff\xfb", 0, "mp3"),
    (b"fLaC", 0, "flac"),
    (b"PK\x03\x04", 0, "zip"),
    (b"WEBP", 8, "webp"),
]


def content_type_for(ext: str | None) -> str:
    """The content type of an extension (``application/octet-stream`` when unknown)."""
    return CONTENT_TYPES.get((ext or "").lower(), "application/octet-stream")


def extension_for(content_type: str | None) -> str | None:
    """The extension of a content type, if it names a known format."""
    if not content_type:
        return None
    return _EXTENSIONS.get(content_type.split(";")[0].strip().lower())


def sniff(head: bytes) -> str | None:
    """The extension a file's first bytes reveal, if any."""
    for magic, offset, ext in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return ext
    return None


def normalise_ext(ext: str | None) -> str | None:
    """``"JPEG"`` → ``"jpg"``; anything not a plain short token → None."""
    if not ext:
        return None
    ext = ext.lower().lstrip(".")
    ext = {"jpeg": "jpg", "tiff": "tif"}.get(ext, ext)
    return ext if ext.isalnum() and len(ext) <= 8 else None
