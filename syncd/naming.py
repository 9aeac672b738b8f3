"""Templates and safe keys: turn an asset's fields into the key it is stored under.

Decisions where the contract leaves room:

- Templates use ``str.format`` syntax and are checked once, at construction. Only the
  named fields in ``TEMPLATE_FIELDS`` are allowed: no positional fields, no attribute or
  index access, no ``!r``-style conversions (they reach into Python objects and invite
  surprises). Format specs are allowed and proven by rendering a sample record.
- A template must name ``media_id`` or ``license_id``; otherwise two assets would be
  written to the same key and overwrite each other.
- Field values never create path structure: "/" and "\\" in a value become "-". The one
  exception is the output of a spec on ``licensed`` (``{licensed:%Y/%m}``), whose slashes
  the operator wrote. ``{licensed}`` without a spec renders as ``YYYY-MM-DD``.
- A missing or ``None`` value renders as "" and its spec is skipped (no value, no padding).
- The rendered text is split on "/" and each segment cleaned: Unicode categories Cc, Cf,
  Cs, Zl, Zp are removed (NUL, newlines, ESC, bidi overrides, lone surrogates, and also
  zero-width joiners, so joined emoji fall apart into their parts); NFC; ``\\ : * ? " < > |``
  become "_"; runs of dots collapse to one so no key contains ".." at all; leading
  whitespace and trailing whitespace and dots are stripped (Windows drops them silently).
  Segments left empty (including "." and "..") are dropped.
- A segment over 255 UTF-8 bytes is cut at a character boundary and gets "~" plus 10 hex
  digits of the SHA-256 of the whole segment, so long names sharing a prefix stay distinct
  even when the cut removes the media_id. The last segment keeps its extension.
- ``render`` raises ``ValueError`` when no identifying value the template uses
  (media_id / license_id) has a letter or digit: such a key could not tell assets apart.
- Not handled: Windows device names (CON, NUL ...) and case-only collisions; none of our
  destinations (S3, POSIX filesystems, WordPress) needs it.
"""

from __future__ import annotations

import hashlib
import re
import string
import unicodedata
from collections.abc import Mapping
from datetime import date, datetime, timezone
from typing import Any

from syncd.errors import ConfigError

DEFAULT_TEMPLATE = "{source}/{media_type}/{media_id}-{slug}.{ext}"

TEMPLATE_FIELDS: frozenset[str] = frozenset(
    {
        "source",
        "media_type",
        "media_id",
        "license_id",
        "license",
        "size",
        "ext",
        "slug",
        "contributor",
        "original_filename",
        "username",
        "licensed",
    }
)

IDENTIFYING_FIELDS: frozenset[str] = frozenset({"media_id", "license_id"})

CONFIG_KEY = "naming.template"
MAX_SEGMENT_BYTES = 255
# A longer "extension" is more likely part of the name than a file type.
MAX_EXTENSION_BYTES = 16
HASH_DIGITS = 10
# slugify cuts at the last dash when it lies this close to the limit, else mid-word.
SLUG_BOUNDARY_WINDOW = 20

_CONTROL_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_UNSAFE_CHARS = str.maketrans({char: "_" for char in '\\:*?"<>|'})
_VALUE_SEPARATORS = str.maketrans({"/": "-", "\\": "-"})
_DOT_RUN = re.compile(r"\.{2,}")
_LEADING_SPACE = re.compile(r"^\s+")
_TRAILING_SPACE_OR_DOT = re.compile(r"[\s.]+$")
_NON_SLUG = re.compile(r"[^a-z0-9]+")
# Letters NFKD cannot take apart into ASCII; without these "Straße" would become "strae".
_TRANSLITERATION = str.maketrans(
    {"ß": "ss", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "ø": "o", "Ø": "O",
     "đ": "d", "Đ": "D", "ð": "d", "Ð": "D", "ł": "l", "Ł": "L", "þ": "th", "Þ": "TH"}
)

# Rendered once per template at construction, so a bad format spec fails at start-up.
_SAMPLE_VALUES: Mapping[str, Any] = {
    "source": "shutterstock",
    "media_type": "image",
    "media_id": "1079756147",
    "license_id": "e1a2b3c4",
    "license": "standard",
    "size": "huge",
    "ext": "jpg",
    "slug": "red-bicycle-on-a-street",
    "contributor": "Jane Doe",
    "original_filename": "red_bicycle.jpg",
    "username": "syncd",
    "licensed": datetime(2024, 5, 17, 9, 30, tzinfo=timezone.utc),
}

# (literal text before the field, field name or None, format spec)
_Part = tuple[str, str | None, str]


def slugify(text: str | None, max_length: int = 60) -> str:
    """ASCII, lower-case, dash-joined form of ``text``, at most ``max_length`` chars."""
    if max_length < 1:
        raise ValueError("max_length must be at least 1")
    decomposed = unicodedata.normalize("NFKD", (text or "").translate(_TRANSLITERATION))
    ascii_text = decomposed.encode("ascii", "ignore").decode("ascii")
    slug = _NON_SLUG.sub("-", ascii_text.lower()).strip("-")
    return _cut_at_word(slug, max_length) or "untitled"


def _cut_at_word(slug: str, max_length: int) -> str:
    """Shorten ``slug`` to ``max_length``, at a dash if one is near the limit."""
    if len(slug) <= max_length:
        return slug
    if slug[max_length] == "-":  # the limit falls exactly between two words
        return slug[:max_length]
    cut = slug[:max_length]
    boundary = cut.rfind("-")
    if boundary > 0 and boundary >= max_length - SLUG_BOUNDARY_WINDOW:
        cut = cut[:boundary]
    return cut.rstrip("-")


class KeyTemplate:
    """A validated ``naming.template`` that renders an asset's values into a safe key."""

    def __init__(self, template: str) -> None:
        self.template = template
        self._parts = _parse(template)
        self._fields = frozenset(field for _, field, _ in self._parts if field is not None)
        _check_structure(template, self._parts, self._fields)
        try:
            self.render(_SAMPLE_VALUES)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{template!r} cannot be rendered: {exc}", key=CONFIG_KEY) from exc

    def __repr__(self) -> str:
        return f"KeyTemplate({self.template!r})"

    @property
    def fields(self) -> frozenset[str]:
        """The field names the template uses."""
        return self._fields

    def render(self, values: Mapping[str, Any]) -> str:
        """Render ``values`` into a relative key whose every segment is safe to write."""
        self._require_identity(values)
        text = "".join(
            literal + (_substitute(field, spec, values) if field is not None else "")
            for literal, field, spec in self._parts
        )
        segments = [segment for segment in map(_clean_segment, text.split("/")) if segment]
        if not segments:
            raise ValueError(f"{self.template!r} renders to an empty key")
        fitted = [_fit(segment, keep_extension=False) for segment in segments[:-1]]
        fitted.append(_fit(segments[-1], keep_extension=True))
        return "/".join(fitted)

    def _require_identity(self, values: Mapping[str, Any]) -> None:
        """Refuse to render a key that could not tell this asset from another."""
        for field in self._fields & IDENTIFYING_FIELDS:
            value = values.get(field)
            if value is not None and any(char.isalnum() for char in str(value)):
                return
        used = ", ".join(sorted(self._fields & IDENTIFYING_FIELDS))
        raise ValueError(f"no usable identifying value ({used}) to render {self.template!r}")


def _parse(template: str) -> list[_Part]:
    """Split ``template`` into parts, refusing every field form except ``{name:spec}``."""
    if not template.strip():
        raise ConfigError("the template is empty", key=CONFIG_KEY)
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:  # unbalanced braces
        raise ConfigError(f"{template!r} is not a valid template: {exc}", key=CONFIG_KEY) from exc
    parts: list[_Part] = []
    for literal, field, spec, conversion in parsed:
        if field is not None:
            _check_field(field, spec or "", conversion)
        parts.append((literal, field, spec or ""))
    unknown = sorted({field for _, field, _ in parts if field is not None} - TEMPLATE_FIELDS)
    if unknown:
        names = ", ".join(f"{{{name}}}" for name in unknown)
        known = ", ".join(sorted(TEMPLATE_FIELDS))
        noun = "field" if len(unknown) == 1 else "fields"
        raise ConfigError(f"unknown {noun} {names}; known fields: {known}", key=CONFIG_KEY)
    return parts


def _check_field(field: str, spec: str, conversion: str | None) -> None:
    """Allow only a bare field name with an optional, non-nested format spec."""
    if field == "" or field.isdigit():
        problem = f"positional field {{{field}}}; name one of the template fields"
    elif "." in field or "[" in field:
        problem = f"attribute or index access {{{field}}} is not supported"
    elif conversion is not None:
        problem = f"conversion !{conversion} in {{{field}!{conversion}}} is not supported"
    elif "{" in spec:
        problem = f"nested field in the format spec of {{{field}:{spec}}} is not supported"
    else:
        return
    raise ConfigError(problem, key=CONFIG_KEY)


def _check_structure(template: str, parts: list[_Part], fields: frozenset[str]) -> None:
    """Refuse templates that could overwrite other assets or escape the destination root."""
    if not fields & IDENTIFYING_FIELDS:
        raise ConfigError(
            f"{template!r} must contain {{media_id}} or {{license_id}}, "
            "or different assets would be written to the same key",
            key=CONFIG_KEY,
        )
    # The literal text with every field stood in for: what the operator wrote as structure.
    skeleton = "".join(literal + ("x" if field is not None else "") for literal, field, _ in parts)
    if skeleton.lstrip().startswith(("/", "\\")):
        raise ConfigError(f"{template!r} is absolute; keys are relative", key=CONFIG_KEY)
    if any(segment.strip() in {".", ".."} for segment in re.split(r"[/\\]", skeleton)):
        raise ConfigError(f"{template!r} contains a '.' or '..' segment", key=CONFIG_KEY)


def _substitute(field: str, spec: str, values: Mapping[str, Any]) -> str:
    """One field's text; only a spec on ``licensed`` may contribute "/"."""
    value = values.get(field)
    if value is None or value == "":
        return ""
    if field == "licensed":
        return _format_licensed(value, spec)
    return format(str(value).translate(_VALUE_SEPARATORS), spec)


def _format_licensed(value: Any, spec: str) -> str:
    """Format the licence date; an ISO string is accepted as well as a datetime."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if not isinstance(moment, date):
        raise TypeError(f"licensed must be a datetime, not {type(value).__name__}")
    if not spec:
        return moment.strftime("%Y-%m-%d")
    return format(moment, spec)


def _clean_segment(raw: str) -> str:
    """Make one path segment safe; "" means the segment is dropped."""
    # Controls go before NFC so a removed zero-width char cannot block a composition.
    visible = "".join(char for char in raw if unicodedata.category(char) not in _CONTROL_CATEGORIES)
    text = unicodedata.normalize("NFC", visible).translate(_UNSAFE_CHARS)
    text = _DOT_RUN.sub(".", text)
    text = _LEADING_SPACE.sub("", text)
    return _TRAILING_SPACE_OR_DOT.sub("", text)


def _fit(segment: str, keep_extension: bool) -> str:
    """Cut ``segment`` to MAX_SEGMENT_BYTES, marking the cut with a hash of the whole."""
    encoded = segment.encode("utf-8")
    if len(encoded) <= MAX_SEGMENT_BYTES:
        return segment
    stem, extension = _split_extension(segment) if keep_extension else (segment, "")
    marker = "~" + hashlib.sha256(encoded).hexdigest()[:HASH_DIGITS]
    budget = MAX_SEGMENT_BYTES - len(marker) - len(extension.encode("utf-8"))
    # "ignore" drops the bytes of a character the cut would split.
    head = stem.encode("utf-8")[:budget].decode("utf-8", "ignore").rstrip()
    return head + marker + extension


def _split_extension(segment: str) -> tuple[str, str]:
    """``("name", ".jpg")`` for ``"name.jpg"``; no extension when the suffix is implausible."""
    stem, dot, suffix = segment.rpartition(".")
    if dot and stem and 0 < len(suffix.encode("utf-8")) <= MAX_EXTENSION_BYTES:
        return stem, dot + suffix
    return segment, ""


def companion_key(key: str, name: str, ext: str) -> str:
    """Where a file that comes with an asset lives: next to it, ``track.wav`` → ``track.NAME.EXT``."""
    folder, slash, segment = key.rpartition("/")
    stem, _ = _split_extension(segment)
    return folder + slash + _fit(f"{stem}.{name}.{ext}", keep_extension=True)
