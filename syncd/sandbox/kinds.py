"""The media kinds the sandbox serves, and how each one is spelled in the Shutterstock API."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, eq=False)
class MediaKind:
    """Everything that differs between images, videos, audio, sfx and editorial media.

    Kinds are module-level singletons, so identity is equality (and they hash).
    """

    name: str
    """Our name for the kind, as passed in ``Sandbox(media_types=...)``."""
    api_path: str
    """Path segment after ``/v2/``: ``images``, ``editorial/videos`` ..."""
    item_key: str
    """Key holding ``{id, format}`` in a history item (``image``, ``video``, ``audio``, ``sfx``)."""
    id_param: str
    """History filter parameter and licensing-result key (``image_id`` ...)."""
    license_prefix: str
    """First letter of license ids of this kind (``i4117504982``)."""
    sizes: dict[str, str]
    """Size name -> file format (extension) of the delivered file."""
    default_size: str
    """Size licensed when a licensing request names none."""
    body_key: str
    """Key of the item list in a licensing request body."""
    body_id_field: str
    """Media id field inside one licensing request item."""
    media_type: str
    """``media_type`` reported in media details."""
    asset_type: str
    """``asset_type`` of the subscription that licenses this kind."""
    default_license: str = "standard"
    editorial: bool = False
    redownloadable: bool = True
    """Editorial media have no redownload endpoint (seed 004, field notes §7)."""


IMAGE = MediaKind(
    name="image",
    api_path="images",
    item_key="image",
    id_param="image_id",
    license_prefix="i",
    sizes={"small": "jpg", "medium": "jpg", "huge": "jpg", "supersize": "jpg", "vector": "eps"},
    default_size="huge",
    body_key="images",
    body_id_field="image_id",
    media_type="image",
    asset_type="images",
)
VIDEO = MediaKind(
    name="video",
    api_path="videos",
    item_key="video",
    id_param="video_id",
    license_prefix="v",
    sizes={"web": "mp4", "sd": "mp4", "hd": "mov", "4k": "mov"},
    default_size="hd",
    body_key="videos",
    body_id_field="video_id",
    media_type="video",
    asset_type="videos",
)
# Audio and sfx have no "size" in the real API, only a file format; using the format as
# the size keeps one model (license -> size -> file) for every kind.
AUDIO = MediaKind(
    name="audio",
    api_path="audio",
    item_key="audio",
    id_param="audio_id",
    license_prefix="a",
    sizes={"wav": "wav", "mp3": "mp3"},
    default_size="wav",
    body_key="audio",
    body_id_field="audio_id",
    media_type="audio",
    asset_type="audio",
    default_license="audio_platform",
)
SFX = MediaKind(
    name="sfx",
    api_path="sfx",
    item_key="sfx",
    id_param="sfx_id",
    license_prefix="s",
    sizes={"wav": "wav", "mp3": "mp3"},
    default_size="wav",
    body_key="sound_effects",
    body_id_field="sfx_id",
    media_type="sfx",
    asset_type="sfx",
)
EDITORIAL_IMAGE = MediaKind(
    name="editorial_image",
    api_path="editorial/images",
    item_key="image",
    id_param="image_id",
    license_prefix="e",
    sizes={"small": "jpg", "medium": "jpg", "original": "jpg"},
    default_size="original",
    body_key="editorial",
    body_id_field="editorial_id",
    media_type="image",
    asset_type="editorial",
    default_license="premier_editorial_all_media",
    editorial=True,
    redownloadable=False,
)
EDITORIAL_VIDEO = MediaKind(
    name="editorial_video",
    api_path="editorial/videos",
    item_key="video",
    id_param="video_id",
    license_prefix="e",
    sizes={"original": "mov"},
    default_size="original",
    body_key="editorial",
    body_id_field="editorial_id",
    media_type="video",
    asset_type="editorial",
    default_license="premier_editorial_video_all_media",
    editorial=True,
    redownloadable=False,
)

KINDS: dict[str, MediaKind] = {
    kind.name: kind for kind in (IMAGE, VIDEO, AUDIO, SFX, EDITORIAL_IMAGE, EDITORIAL_VIDEO)
}

# Names people naturally type; "editorial" alone means editorial images.
_ALIASES = {
    "images": "image",
    "videos": "video",
    "editorial": "editorial_image",
    "editorial-image": "editorial_image",
    "editorial-video": "editorial_video",
    "editorial/images": "editorial_image",
    "editorial/videos": "editorial_video",
}


def kind_named(name: str) -> MediaKind:
    """Look a kind up by name or alias; unknown names raise ValueError listing the valid ones."""
    key = _ALIASES.get(name, name)
    if key not in KINDS:
        raise ValueError(f"unknown media type {name!r}; expected one of {', '.join(KINDS)}")
    return KINDS[key]


def kind_for_path(api_path: str) -> MediaKind:
    """The kind whose ``/v2/<api_path>`` endpoints a request addressed."""
    for kind in KINDS.values():
        if kind.api_path == api_path:
            return kind
    raise KeyError(api_path)


CONTENT_TYPES: dict[str, str] = {
    "jpg": "image/jpeg",
    "eps": "application/postscript",
    "mp4": "video/mp4",
    "mov": "video/quicktime",
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "zip": "application/zip",
}
