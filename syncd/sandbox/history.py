"""The sandbox's mutable state: license histories, media details and subscriptions, behind one lock."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from syncd.sandbox import data
from syncd.sandbox.kinds import KINDS, MediaKind

# Keys of ``add_licenses(**overrides)`` that describe the license rather than the media.
LICENSE_OVERRIDES = frozenset(
    {"is_downloadable", "size", "download_time", "subscription_id", "license", "metadata", "username"}
)
# Keys that steer generation without appearing in any served record.
ARCHIVE = "shorts_loops_stems"  # the audio archive's pseudo-size in download grants
CONTROL_OVERRIDES = frozenset({"media_id", "file_bytes", "stems_bytes"})

# Likelihood weights for the size a generated license was bought in.
SIZE_WEIGHTS: dict[str, int] = {
    "small": 1, "medium": 3, "huge": 5, "supersize": 2, "vector": 3,
    "web": 1, "sd": 2, "hd": 5, "4k": 2, "wav": 2, "mp3": 1,
}
DOWNLOADS_LIMIT = 750


@dataclass(frozen=True)
class LicenseRecord:
    """A license and the kind whose history holds it; ``item`` is the dict the API serves."""

    kind: MediaKind
    item: dict[str, Any]

    @property
    def media_id(self) -> str:
        return str(self.item[self.kind.item_key]["id"])

    @property
    def size(self) -> str:
        return str(self.item[self.kind.item_key]["format"]["size"])

    @property
    def is_downloadable(self) -> bool:
        return bool(self.item.get("is_downloadable", True))


class Catalogue:
    """License histories (newest first), media details and subscriptions for one sandbox."""

    def __init__(
        self,
        seed: int,
        kinds: Iterable[MediaKind],
        licenses_per_kind: int,
        file_bytes: int | None,
        now: float,
    ) -> None:
        self.seed = seed
        self.kinds = tuple(kinds)
        self.factory = data.MediaFactory(seed, file_bytes)
        self.lock = threading.RLock()
        self.licensing_calls = 0
        self._histories: dict[str, list[dict[str, Any]]] = {name: [] for name in KINDS}
        self._media: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in KINDS}
        self.archives: dict[str, int] = {}  # audio media id -> bytes of its shorts/loops/stems zip
        self._licenses: dict[str, LicenseRecord] = {}
        self._serials: dict[str, int] = {name: 0 for name in KINDS}
        self._arrivals: tuple[MediaKind, float, float] | None = None
        self._arrived = 0
        self._subscriptions = self._make_subscriptions(now)
        for kind in self.kinds:
            self._seed_history(kind, licenses_per_kind, now)

    # --- reading ------------------------------------------------------------------------

    def history(self, kind: MediaKind) -> list[dict[str, Any]]:
        """The kind's license history, newest first (a new list of the live dicts)."""
        with self.lock:
            return list(self._histories[kind.name])

    def media(self, kind: MediaKind, media_id: str) -> dict[str, Any] | None:
        """Details of one media item of ``kind``, or None."""
        with self.lock:
            return self._media[kind.name].get(media_id)

    def license(self, license_id: str) -> LicenseRecord | None:
        """The license with this id, of any kind, or None."""
        with self.lock:
            return self._licenses.get(license_id)

    def subscriptions(self) -> list[dict[str, Any]]:
        """The account's subscriptions, one per asset type configured."""
        with self.lock:
            return list(self._subscriptions.values())

    def subscription_for(self, kind: MediaKind) -> dict[str, Any] | None:
        """The subscription that licenses ``kind`` by default."""
        with self.lock:
            return next((s for s in self._subscriptions.values() if s["asset_type"] == kind.asset_type), None)

    # --- writing ------------------------------------------------------------------------

    def add_licenses(self, kind: MediaKind, count: int, now: float, overrides: dict[str, Any]) -> list[dict[str, Any]]:
        """Add ``count`` licenses at the top of the history; returns them newest first."""
        if "size" in overrides and overrides["size"] not in kind.sizes:
            raise ValueError(f"size {overrides['size']!r} is not one of {', '.join(kind.sizes)} for {kind.name}")
        added: list[dict[str, Any]] = []
        with self.lock:
            for _ in range(count):
                added.append(self._add_one(kind, now, overrides))
        return added[::-1]

    def license_media(
        self,
        kind: MediaKind,
        media_id: str,
        size: str,
        now: float,
        subscription_id: str,
        license_name: str | None,
        metadata: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """Record a license bought through the licensing endpoint (downloadable unless editorial)."""
        with self.lock:
            license_id, rng = self._next_license(kind)
            return self._append(
                kind,
                license_id,
                rng,
                media_id=media_id,
                size=size,
                when=self._next_time(kind, now),
                is_downloadable=kind.redownloadable,
                subscription_id=subscription_id,
                license_name=license_name,
                metadata=metadata,
            )

    def charge(self, subscription_id: str, kind: MediaKind) -> str | None:
        """Spend one download of a subscription; returns an error message instead if it cannot."""
        with self.lock:
            subscription = self._subscriptions.get(subscription_id)
            if subscription is None:
                return f"Subscription {subscription_id} not found"
            if subscription["asset_type"] != kind.asset_type:
                return f"Subscription {subscription_id} cannot license {kind.api_path}"
            allotment = subscription["allotment"]
            if allotment["downloads_left"] <= 0:
                return f"Subscription {subscription_id} has no downloads left"
            allotment["downloads_left"] -= 1
            return None

    def record_licensing_call(self) -> None:
        """Count a licensing request that created at least one license."""
        with self.lock:
            self.licensing_calls += 1

    def schedule_arrivals(self, kind: MediaKind, interval: float, start: float) -> None:
        """Make a new license of ``kind`` appear every ``interval`` seconds after ``start``."""
        if interval <= 0:
            raise ValueError("arrival_interval must be positive")
        self._arrivals = (kind, interval, start)

    def advance(self, now: float) -> None:
        """Add the licenses that should have arrived by ``now`` (computed lazily on each request)."""
        if self._arrivals is None:
            return
        kind, interval, start = self._arrivals
        due = int((now - start) // interval)
        with self.lock:
            while self._arrived < due:
                self._arrived += 1
                license_id, rng = self._next_license(kind)
                when = start + self._arrived * interval
                self._add_generated(kind, license_id, rng, when, self._default_downloadable(kind, rng))

    # --- generation ---------------------------------------------------------------------

    def _seed_history(self, kind: MediaKind, count: int, now: float) -> None:
        """Generate the initial history oldest first, so each new license lands on top."""
        times = self._initial_times(kind, count, now)
        duplicates = self._duplicate_positions(kind, count)
        for index in range(count):
            license_id, rng = self._next_license(kind)
            downloadable = self._default_downloadable(kind, rng)
            if index in duplicates:
                self._add_duplicate(kind, license_id, rng, times[index], downloadable)
            else:
                self._add_generated(kind, license_id, rng, times[index], downloadable)

    def _initial_times(self, kind: MediaKind, count: int, now: float) -> list[float]:
        """Download times oldest first, hours apart, the newest a few minutes before ``now``."""
        rng = data.record_rng(self.seed, "times", kind.name)
        moment = now - rng.randint(5 * 60, 55 * 60)
        newest_first = []
        for _ in range(count):
            newest_first.append(float(int(moment)))
            moment -= rng.randint(3600, 6 * 3600) + rng.randint(0, 3599)
        return newest_first[::-1]

    def _duplicate_positions(self, kind: MediaKind, count: int) -> set[int]:
        """Which initial licenses re-license an older media (about one in twelve, at least one)."""
        if count < 6:
            return set()
        rng = data.record_rng(self.seed, "duplicates", kind.name)
        return set(rng.sample(range(count // 2, count), max(1, count // 12)))

    def _add_generated(
        self, kind: MediaKind, license_id: str, rng: random.Random, when: float, downloadable: bool
    ) -> dict[str, Any]:
        """License a brand-new media item."""
        media = self._create_media(kind, self._unused_media_id(kind, rng))
        size = self._choose_size(kind, media, rng)
        return self._append(
            kind, license_id, rng, media_id=media["id"], size=size, when=when, is_downloadable=downloadable
        )

    def _add_duplicate(
        self, kind: MediaKind, license_id: str, rng: random.Random, when: float, downloadable: bool
    ) -> dict[str, Any]:
        """License an older media again in another size (``medium`` earlier, ``huge`` now)."""
        history = self._histories[kind.name]
        seen_twice = {media_id for media_id, n in self._media_counts(kind).items() if n > 1}
        candidates = [item for item in history if item[kind.item_key]["id"] not in seen_twice]
        if not candidates:
            return self._add_generated(kind, license_id, rng, when, downloadable)
        original = rng.choice(candidates)[kind.item_key]
        media = self._media[kind.name][original["id"]]
        sizes = self.factory.sizes_of(kind, media)
        larger = [s for s in sizes if sizes.index(s) > sizes.index(original["format"]["size"])]
        other = [s for s in sizes if s != original["format"]["size"]]
        size = (larger or other or sizes)[0] if not kind.editorial else "original"
        return self._append(
            kind, license_id, rng, media_id=media["id"], size=size, when=when, is_downloadable=downloadable
        )

    def _add_one(self, kind: MediaKind, now: float, overrides: dict[str, Any]) -> dict[str, Any]:
        """One ``add_licenses`` license, with overrides split between license and media."""
        license_id, rng = self._next_license(kind)
        media_id = str(overrides["media_id"]) if "media_id" in overrides else self._unused_media_id(kind, rng)
        media = self._media[kind.name].get(media_id) or self._create_media(kind, media_id)
        media.update({k: v for k, v in overrides.items() if k not in LICENSE_OVERRIDES | CONTROL_OVERRIDES})
        size = overrides.get("size") or self._choose_size(kind, media, rng)
        self.factory.ensure_asset(kind, media, size)
        if overrides.get("file_bytes") is not None:
            media["assets"][data.asset_key(kind, size)]["file_size"] = int(overrides["file_bytes"])
        if overrides.get("stems_bytes") is not None:
            if kind.name != "audio":
                raise ValueError("only audio tracks come with a shorts/loops/stems archive")
            self.archives[media_id] = int(overrides["stems_bytes"])
            media["assets"][ARCHIVE] = data.archive_previews(media_id)
        when = overrides.get("download_time") or self._next_time(kind, now)
        return self._append(
            kind,
            license_id,
            rng,
            media_id=media_id,
            size=size,
            when=when,
            # Licenses added by a test stand for fresh purchases: downloadable unless editorial.
            is_downloadable=overrides.get("is_downloadable", kind.redownloadable),
            subscription_id=overrides.get("subscription_id"),
            license_name=overrides.get("license"),
            metadata=overrides.get("metadata"),
            username=overrides.get("username"),
        )

    def _append(
        self,
        kind: MediaKind,
        license_id: str,
        rng: random.Random,
        *,
        media_id: str,
        size: str,
        when: float | str,
        is_downloadable: bool,
        subscription_id: str | None = None,
        license_name: str | None = None,
        metadata: dict[str, Any] | None = None,
        username: str | None = None,
    ) -> dict[str, Any]:
        """Put a new license on top of the kind's history and index it by id."""
        moment = when if isinstance(when, str) else data.format_time(datetime.fromtimestamp(when, UTC), rng)
        default_subscription = self.subscription_for(kind)
        item = data.history_item(
            kind,
            license_id=license_id,
            media_id=media_id,
            size=size,
            download_time=moment,
            subscription_id=subscription_id or (default_subscription or {}).get("id", ""),
            is_downloadable=bool(is_downloadable),
            # The real API often leaves format.format out; one item in four does here.
            with_format=rng.random() >= 0.25,
            username=username or rng.choice(data.USERNAMES),
            license_name=license_name,
            metadata=metadata,
        )
        self._histories[kind.name].insert(0, item)
        self._licenses[license_id] = LicenseRecord(kind, item)
        return item

    def _next_license(self, kind: MediaKind) -> tuple[str, random.Random]:
        """The id of the kind's next license and the generator private to it."""
        self._serials[kind.name] += 1
        serial = self._serials[kind.name]
        return data.license_id(self.seed, kind, serial), data.record_rng(self.seed, "license", kind.name, serial)

    def _next_time(self, kind: MediaKind, now: float) -> float:
        """``now``, but always at least one second after the current top of the history."""
        history = self._histories[kind.name]
        if not history:
            return now
        newest = data.parse_time(history[0]["download_time"]).timestamp()
        return max(now, newest + 1)

    def _create_media(self, kind: MediaKind, media_id: str) -> dict[str, Any]:
        rng = data.record_rng(self.seed, "media", kind.name, media_id)
        media = self.factory.new_media(kind, media_id, rng)
        self._media[kind.name][media_id] = media
        return media

    def _unused_media_id(self, kind: MediaKind, rng: random.Random) -> str:
        while True:
            media_id = data.new_media_id(kind, rng)
            if media_id not in self._media[kind.name]:
                return media_id

    def _media_counts(self, kind: MediaKind) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in self._histories[kind.name]:
            media_id = item[kind.item_key]["id"]
            counts[media_id] = counts.get(media_id, 0) + 1
        return counts

    def _choose_size(self, kind: MediaKind, media: dict[str, Any], rng: random.Random) -> str:
        if kind.editorial:
            return "original"
        sizes = self.factory.sizes_of(kind, media)
        return rng.choices(sizes, weights=[SIZE_WEIGHTS.get(size, 1) for size in sizes])[0]

    @staticmethod
    def _default_downloadable(kind: MediaKind, rng: random.Random) -> bool:
        """About one generated license in ten can no longer be redownloaded."""
        return kind.redownloadable and rng.random() >= 0.1

    def _make_subscriptions(self, now: float) -> dict[str, dict[str, Any]]:
        """One subscription per asset type among the configured kinds."""
        subscriptions: dict[str, dict[str, Any]] = {}
        start = datetime.fromtimestamp(now, UTC).replace(microsecond=0) - timedelta(days=30)
        for kind in self.kinds:
            subscription_id = data.subscription_id_for(self.seed, kind)
            entry = subscriptions.setdefault(subscription_id, {
                "id": subscription_id,
                "license": kind.default_license if not kind.editorial else "premier_editorial",
                "description": f"Sandbox {kind.asset_type} subscription",
                "asset_type": kind.asset_type,
                "expiration_time": (start + timedelta(days=365)).isoformat(),
                "formats": [],
                "allotment": {
                    "start_time": start.isoformat(),
                    "end_time": (start + timedelta(days=60)).isoformat(),
                    "downloads_left": DOWNLOADS_LIMIT,
                    "downloads_limit": DOWNLOADS_LIMIT,
                },
            })
            entry["formats"].extend(
                {"size": size, "format": fmt, "media_type": kind.media_type, "description": size.capitalize()}
                for size, fmt in kind.sizes.items()
            )
        return subscriptions
