"""Deterministic media details and license-history items: the same seed always yields the same catalogue.

Every record draws from its own ``random.Random`` seeded with a string naming the record
(seed, kind, serial), so adding a license later never changes the ones made before it,
and string seeds do not depend on PYTHONHASHSEED.
"""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from syncd.sandbox.kinds import KINDS, MediaKind

WORDS: tuple[str, ...] = (
    "mountain", "river", "forest", "city", "skyline", "sunset", "morning", "family", "team",
    "office", "laptop", "coffee", "beach", "ocean", "wave", "desert", "road", "bicycle",
    "runner", "child", "dog", "cat", "horse", "garden", "flower", "autumn", "winter",
    "snow", "rain", "storm", "cloud", "light", "shadow", "portrait", "smile", "hands",
    "market", "street", "night", "neon", "bridge", "train", "airport", "kitchen", "bread",
    "vegetables", "doctor", "science", "abstract", "texture", "pattern", "gold", "blue",
    "green", "red", "vintage", "modern", "quiet", "busy", "golden", "misty", "bright",
    "calm", "wild", "urban", "rural", "festival", "music", "dance", "travel", "hiking",
    "backpack", "lake", "island", "harbor", "boat", "lighthouse", "meadow", "field", "farm",
)
CATEGORIES: tuple[tuple[str, str], ...] = (
    ("1", "Animals/Wildlife"), ("3", "Backgrounds/Textures"), ("4", "Buildings/Landmarks"),
    ("5", "Business/Finance"), ("6", "Education"), ("7", "Food and Drink"),
    ("8", "Healthcare/Medical"), ("10", "Objects"), ("12", "Nature"), ("13", "People"),
    ("18", "Sports/Recreation"), ("19", "Technology"), ("20", "Transportation"),
    ("26", "Abstract"), ("27", "Parks/Outdoor"),
)
GENRES: tuple[str, ...] = ("Ambient", "Cinematic", "Corporate", "Electronic", "Folk", "Hip Hop", "Rock")
MOODS: tuple[str, ...] = ("Calm", "Dreamy", "Epic", "Happy", "Hopeful", "Playful", "Tense")
INSTRUMENTS: tuple[str, ...] = ("Piano", "Guitar", "Strings", "Drums", "Synth", "Bass")
USERNAMES: tuple[str, ...] = ("jsmith", "mlopez", "akim")

# Default generated files are small so tests and the demo stay fast (20-120 KB).
MIN_DEFAULT_BYTES = 20 * 1024
MAX_DEFAULT_BYTES = 120 * 1024


def record_rng(seed: int, *parts: object) -> random.Random:
    """A generator private to one record, named by the seed and the record's identity."""
    return random.Random("/".join(str(part) for part in (seed, *parts)))


def default_file_size(seed: int, kind: MediaKind, media_id: str, size: str) -> int:
    """The deterministic length of a generated file when nothing overrides it."""
    rng = record_rng(seed, "bytes", kind.name, media_id, size)
    return rng.randint(MIN_DEFAULT_BYTES, MAX_DEFAULT_BYTES)


# --- text -------------------------------------------------------------------------------


def sentence(rng: random.Random) -> str:
    """One sentence of 5-11 catalogue words."""
    words = [rng.choice(WORDS) for _ in range(rng.randint(5, 11))]
    return " ".join(words).capitalize() + "."


def description(rng: random.Random) -> str:
    """A one-to-three sentence description."""
    return " ".join(sentence(rng) for _ in range(rng.randint(1, 3)))


def keywords(rng: random.Random) -> list[str]:
    """5-15 distinct keywords."""
    return rng.sample(WORDS, rng.randint(5, 15))


def categories(rng: random.Random) -> list[dict[str, str]]:
    """One or two ``{id, name}`` categories."""
    return [{"id": cid, "name": name} for cid, name in rng.sample(CATEGORIES, rng.randint(1, 2))]


def original_filename(rng: random.Random, stem: str, extension: str) -> str | None:
    """A camera-style file name; sometimes awkward, sometimes absent, as in real catalogues.

    The real API shows ``original_filename`` only in examples, so about one in ten media
    lack it; another one in ten has spaces, brackets or non-ASCII characters that a
    naming template must make safe.
    """
    roll = rng.random()
    number = rng.randint(1000, 9999)
    if roll < 0.1:
        return None
    if roll < 0.2:
        awkward = rng.choice(("Été à Paris (copy)", "shot #3 final", "Größe/Übersicht", "x  y"))
        return f"{awkward} {number}.{extension.upper()}"
    return f"{stem}{number}.{extension}"


# --- ids and times ----------------------------------------------------------------------


def new_media_id(kind: MediaKind, rng: random.Random) -> str:
    """A media id: numeric, or digits plus two letters for editorial (``9763363ao``)."""
    if kind.editorial:
        letters = "abcdefghijklmnopqrstuvwxyz"
        return f"{rng.randint(1_000_000, 9_999_999)}{rng.choice(letters)}{rng.choice(letters)}"
    return str(rng.randint(100_000_000, 2_499_999_999))


def license_id(seed: int, kind: MediaKind, serial: int) -> str:
    """``i4117504982``: numbers grow with the kind's serial, so newer licenses have larger ids.

    Each kind numbers from its own offset because editorial images and videos share the
    ``e`` prefix.
    """
    offset = list(KINDS).index(kind.name) * 50_000_000
    jitter = record_rng(seed, "license-number", kind.name, serial).randint(0, 9)
    return f"{kind.license_prefix}{4_000_000_000 + (seed % 1000) * 1_000_000 + offset + serial * 10 + jitter}"


EASTERN = timezone(timedelta(hours=-4))


def format_time(moment: datetime, rng: random.Random) -> str:
    """ISO timestamp, half with ``Z`` and half with the docs' ``-04:00`` offset."""
    moment = moment.replace(microsecond=0)
    if rng.random() < 0.5:
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return moment.astimezone(EASTERN).isoformat()


def parse_time(text: str) -> datetime:
    """Parse an API timestamp or date; naive values are taken as UTC."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# --- media details ----------------------------------------------------------------------


def archive_previews(media_id: str) -> dict[str, Any]:
    """``assets.shorts_loops_stems`` of a track that has the archive: preview links, as the spec shows."""
    base = f"https://ak.picdn.net/shutterstock/audio/{media_id}/preview"
    return {part: {"url": f"{base}/{part}.mp3"} for part in ("shorts", "loops", "stems")}


def display_name(size: str) -> str:
    """``Huge``, ``HD``, ``4K``, ``WAV``: how the API labels a size."""
    return size.upper() if size in ("sd", "hd", "4k", "wav", "mp3") else size.capitalize()


def asset_key(kind: MediaKind, size: str) -> str:
    """Where a size lives in ``assets``: ``huge_jpg`` and ``vector_eps`` for images, the size itself otherwise."""
    if kind.name == "image" or (kind.name == "editorial_image" and size != "original"):
        return f"{size}_{kind.sizes[size]}"
    return size


class MediaFactory:
    """Builds media-details dicts whose ``assets.*.file_size`` equal the bytes a download serves."""

    def __init__(self, seed: int, file_bytes: int | None) -> None:
        self.seed = seed
        self.file_bytes = file_bytes

    def file_size(self, kind: MediaKind, media_id: str, size: str) -> int:
        """The length of a freshly generated asset (``Sandbox(file_bytes=...)`` wins)."""
        if self.file_bytes is not None:
            return self.file_bytes
        return default_file_size(self.seed, kind, media_id, size)

    def new_media(self, kind: MediaKind, media_id: str, rng: random.Random) -> dict[str, Any]:
        """Details for one new media item of ``kind``."""
        builders = {
            "image": self._image,
            "video": self._video,
            "audio": self._audio,
            "sfx": self._sfx,
            "editorial_image": self._editorial,
            "editorial_video": self._editorial,
        }
        media = builders[kind.name](kind, media_id, rng)
        return {key: value for key, value in media.items() if value is not None}

    def sizes_of(self, kind: MediaKind, media: dict[str, Any]) -> list[str]:
        """The sizes this media can be delivered in, smallest first."""
        return [size for size in kind.sizes if asset_key(kind, size) in media["assets"]]

    def ensure_asset(self, kind: MediaKind, media: dict[str, Any], size: str) -> None:
        """Give ``media`` an asset for ``size`` if it lacks one (an override asked for it)."""
        key = asset_key(kind, size)
        if key not in media["assets"]:
            media["assets"][key] = self._asset(kind, media["id"], size, 1000, 1000)

    def _asset(self, kind: MediaKind, media_id: str, size: str, width: int, height: int) -> dict[str, Any]:
        """One ``assets`` entry with the generated file's real length."""
        asset: dict[str, Any] = {
            "file_size": self.file_size(kind, media_id, size),
            "format": kind.sizes[size],
            "is_licensable": True,
            "display_name": display_name(size),
        }
        if kind.media_type in ("image", "video"):
            asset.update(width=width, height=height)
        if kind.media_type == "image":
            asset["dpi"] = 300
        return asset

    def _common(self, kind: MediaKind, media_id: str, rng: random.Random) -> dict[str, Any]:
        added = datetime(2012, 1, 1) + timedelta(days=rng.randint(0, 4000))
        return {
            "id": media_id,
            "added_date": added.date().isoformat(),
            "description": description(rng),
            "keywords": keywords(rng),
            "categories": categories(rng),
            "contributor": {"id": str(rng.randint(100_000, 9_999_999))},
            "media_type": kind.media_type,
        }

    def _image(self, kind: MediaKind, media_id: str, rng: random.Random) -> dict[str, Any]:
        media = self._common(kind, media_id, rng)
        image_type = rng.choices(("photo", "illustration", "vector"), weights=(8, 1, 1))[0]
        aspect = rng.choice((1.5, 1.3333, 0.6667, 1.0, 1.7778))
        huge_width = rng.randint(3000, 7000)
        widths = {"small": 500, "medium": 1000, "huge": huge_width, "supersize": huge_width * 2}
        sizes = ["small", "medium", "huge"]
        if rng.random() < 0.6:
            sizes.append("supersize")
        if image_type == "vector":
            sizes.append("vector")
            widths["vector"] = huge_width
        media["assets"] = {
            asset_key(kind, size): self._asset(kind, media_id, size, widths[size], round(widths[size] / aspect))
            for size in sizes
        }
        extension = "eps" if image_type == "vector" else "jpg"
        stem = "vector-" if image_type == "vector" else rng.choice(("IMG_", "DSC_", "P"))
        media.update(
            aspect=aspect,
            image_type=image_type,
            is_illustration=image_type != "photo",
            is_adult=False,
            has_model_release=rng.random() < 0.5,
            original_filename=original_filename(rng, stem, extension),
        )
        return media

    def _video(self, kind: MediaKind, media_id: str, rng: random.Random) -> dict[str, Any]:
        media = self._common(kind, media_id, rng)
        dimensions = {"web": (640, 360), "sd": (852, 480), "hd": (1920, 1080), "4k": (3840, 2160)}
        sizes = ["web", "sd", "hd"] + (["4k"] if rng.random() < 0.5 else [])
        fps = rng.choice((25.0, 29.97, 30.0))
        media["assets"] = {
            size: {**self._asset(kind, media_id, size, *dimensions[size]), "fps": fps} for size in sizes
        }
        media.update(
            aspect=1.778,
            aspect_ratio="16:9",
            duration=round(rng.uniform(5, 60), 2),
            is_editorial=False,
            is_adult=False,
            has_model_release=rng.random() < 0.5,
            original_filename=original_filename(rng, rng.choice(("MVI_", "C", "DJI_")), "mov"),
        )
        return media

    def _audio(self, kind: MediaKind, media_id: str, rng: random.Random) -> dict[str, Any]:
        media = self._common(kind, media_id, rng)
        media.pop("categories")
        title = " ".join(rng.sample(WORDS, 2)).title()
        media["assets"] = {size: self._asset(kind, media_id, size, 0, 0) for size in kind.sizes}
        media.update(
            title=title,
            artists=[{"name": rng.choice(("Lumen Drift", "Paper Harbor", "Northbound"))}],
            bpm=rng.randint(70, 160),
            duration=rng.randint(60, 240),
            genres=rng.sample(GENRES, 2),
            moods=rng.sample(MOODS, 2),
            instruments=rng.sample(INSTRUMENTS, 2),
            is_instrumental=rng.random() < 0.7,
            original_filename=original_filename(rng, "track-", "wav"),
        )
        return media

    def _sfx(self, kind: MediaKind, media_id: str, rng: random.Random) -> dict[str, Any]:
        media = self._common(kind, media_id, rng)
        media.pop("categories")
        media["assets"] = {size: self._asset(kind, media_id, size, 0, 0) for size in kind.sizes}
        media.update(
            title=" ".join(rng.sample(WORDS, 2)).title(),
            artist="Sandbox Foley",
            duration=round(rng.uniform(0.5, 20), 2),
            original_filename=original_filename(rng, "sfx_", "wav"),
        )
        return media

    def _editorial(self, kind: MediaKind, media_id: str, rng: random.Random) -> dict[str, Any]:
        media = self._common(kind, media_id, rng)
        media.pop("contributor")
        media["categories"] = [{"name": name} for _, name in rng.sample(CATEGORIES, 1)]
        taken = datetime(2015, 1, 1) + timedelta(days=rng.randint(0, 3000))
        dimensions = {"small": (500, 333), "medium": (1000, 667), "original": (4000, 2667)}
        media["assets"] = {
            asset_key(kind, size): self._asset(kind, media_id, size, *dimensions[size]) for size in kind.sizes
        }
        media.update(
            title=sentence(rng).rstrip("."),
            caption=media["description"],
            byline="Sandbox Press/Shutterstock",
            date_taken=taken.date().isoformat(),
            aspect=1.5,
        )
        return media


# --- history items ----------------------------------------------------------------------


def history_item(
    kind: MediaKind,
    *,
    license_id: str,
    media_id: str,
    size: str,
    download_time: str,
    subscription_id: str,
    is_downloadable: bool,
    with_format: bool,
    username: str,
    license_name: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One license-history item shaped like the spec's ``DownloadHistory``."""
    media_format: dict[str, str] = {"size": size}
    if with_format:
        media_format["format"] = kind.sizes[size]
    return {
        "id": license_id,
        "user": {"username": username},
        "license": license_name or kind.default_license,
        "subscription_id": subscription_id,
        "download_time": download_time,
        "is_downloadable": is_downloadable,
        "metadata": metadata or {},
        kind.item_key: {"id": media_id, "format": media_format},
    }


def subscription_id_for(seed: int, kind: MediaKind) -> str:
    """The id of the subscription that licenses ``kind`` (``s`` + 8 digits)."""
    digest = hashlib.sha256(f"{seed}/subscription/{kind.asset_type}".encode()).hexdigest()
    return f"s{int(digest[:12], 16) % 90_000_000 + 10_000_000}"
