"""Deterministic file bytes generated on the fly, in any byte range, with flat memory.

A file is its format's magic header, a cheap pseudo-random body and, for JPEG and EPS, the
format's trailer. The body repeats one 64 KiB block from SHAKE-256, rotated differently
for every block index so no two blocks of a file are equal; producing any range costs one
slice per 64 KiB and nothing is ever held whole, in memory or on disk.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator

from syncd.sandbox.kinds import CONTENT_TYPES

BLOCK = 64 * 1024
# A prime stride so consecutive blocks start at unrelated rotations of the base block.
ROTATION_STRIDE = 7919
U32_MAX = 0xFFFFFFFF


def _box_header(box_type: bytes, size: int) -> bytes:
    """An ISO-BMFF box header, switching to the 64-bit form for boxes over 4 GiB."""
    if size <= U32_MAX:
        return struct.pack(">I", size) + box_type
    return struct.pack(">I", 1) + box_type + struct.pack(">Q", size)


def _wav_header(length: int) -> bytes:
    """RIFF/WAVE header of 16-bit stereo 44.1 kHz PCM whose data chunk fills the file."""
    riff_size = min(max(length - 8, 0), U32_MAX)
    data_size = min(max(length - 44, 0), U32_MAX)
    fmt_chunk = b"fmt " + struct.pack("<IHHIIHH", 16, 1, 2, 44_100, 44_100 * 4, 4, 16)
    return b"RIFF" + struct.pack("<I", riff_size) + b"WAVE" + fmt_chunk + b"data" + struct.pack("<I", data_size)


def header_for(fmt: str, length: int) -> bytes:
    """The magic bytes a file of this format starts with."""
    if fmt == "jpg":
        return b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    if fmt in ("mp4", "mov"):
        brand = b"mp42" if fmt == "mp4" else b"qt  "
        ftyp = _box_header(b"ftyp", 24) + brand + b"\x00\x00\x00\x00" + brand + b"isom"
        return ftyp + _box_header(b"mdat", max(length - len(ftyp), 0))
    if fmt == "wav":
        return _wav_header(length)
    if fmt == "mp3":
        # An ID3v2.3 tag of size 0, then one MPEG-1 Layer III frame header.
        return b"ID3\x03\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x64"
    if fmt == "zip":
        # A local file header (PKZIP 2.0, stored) of the first member, as every zip archive starts.
        return b"PK\x03\x04\x14\x00\x00\x00\x00\x00" + b"\x00" * 16 + b"\x09\x00\x00\x00stems.wav"
    if fmt == "eps":
        return b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 1000 1000\n%%Creator: syncd sandbox\n%%EndComments\n"
    raise ValueError(f"no generator for format {fmt!r}")


def trailer_for(fmt: str) -> bytes:
    """The bytes a file of this format ends with (empty when the format has none)."""
    return {"jpg": b"\xff\xd9", "eps": b"\n%%EOF\n"}.get(fmt, b"")


class GeneratedFile:
    """A file of ``length`` bytes whose content depends only on ``key``, ``fmt`` and ``length``."""

    def __init__(self, key: str, fmt: str, length: int) -> None:
        self.key = key
        self.fmt = fmt
        self.length = length
        self.content_type = CONTENT_TYPES[fmt]
        header = header_for(fmt, length)
        trailer = trailer_for(fmt)
        self._header = header[:length]
        # Files too short for header and trailer keep only (part of) the header.
        self._trailer = trailer if length >= len(header) + len(trailer) else b""
        self._base = hashlib.shake_256(f"{key}/{fmt}".encode()).digest(BLOCK)

    @property
    def etag(self) -> str:
        digest = hashlib.sha1(f"{self.key}/{self.fmt}/{self.length}".encode()).hexdigest()
        return f'"{digest[:20]}"'

    def read(self, start: int = 0, stop: int | None = None) -> bytes:
        """Bytes ``[start, stop)`` at once; for tests and small files only."""
        return b"".join(self.iter_range(start, self.length if stop is None else stop))

    def iter_range(self, start: int, stop: int) -> Iterator[bytes]:
        """Yield bytes ``[start, stop)`` in pieces of at most 64 KiB."""
        stop = min(stop, self.length)
        position = max(start, 0)
        while position < stop:
            block_index, offset = divmod(position, BLOCK)
            end = min(stop, (block_index + 1) * BLOCK)
            piece = self._block(block_index)[offset: offset + end - position]
            yield self._overlay(position, piece)
            position = end

    def _block(self, index: int) -> bytes:
        rotation = (index * ROTATION_STRIDE) % BLOCK
        return self._base[rotation:] + self._base[:rotation]

    def _overlay(self, position: int, piece: bytes) -> bytes:
        """Write the header and trailer over the parts of ``piece`` they cover."""
        end = position + len(piece)
        trailer_start = self.length - len(self._trailer)
        touches_header = position < len(self._header)
        touches_trailer = bool(self._trailer) and end > trailer_start
        if not (touches_header or touches_trailer):
            return piece
        buffer = bytearray(piece)
        if touches_header:
            part = self._header[position: min(end, len(self._header))]
            buffer[0: len(part)] = part
        if touches_trailer:
            from_trailer = max(position, trailer_start)
            part = self._trailer[from_trailer - trailer_start: end - trailer_start]
            buffer[from_trailer - position: from_trailer - position + len(part)] = part
        return bytes(buffer)
