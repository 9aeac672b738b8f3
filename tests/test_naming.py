"""Specifications of naming: templates are checked up front and every rendered key is safe."""

from __future__ import annotations

import random
import unicodedata
from datetime import datetime, timezone
from typing import Any

import pytest

from syncd.errors import ConfigError
from syncd.naming import DEFAULT_TEMPLATE, TEMPLATE_FIELDS, KeyTemplate, slugify

CONTROL_CATEGORIES = {"Cc", "Cf", "Cs", "Zl", "Zp"}


def record(**overrides: Any) -> dict[str, Any]:
    """A typical Shutterstock image record, with fields replaced as a test needs."""
    values: dict[str, Any] = {
        "source": "shutterstock",
        "media_type": "image",
        "media_id": "1079756147",
        "license_id": "e123abc456",
        "license": "standard",
        "size": "huge",
        "ext": "jpg",
        "slug": slugify("Red bicycle on a street"),
        "contributor": "Jane Doe",
        "original_filename": "red_bicycle.jpg",
        "username": "ops",
        "licensed": datetime(2024, 5, 17, 9, 30, tzinfo=timezone.utc),
    }
    values.update(overrides)
    return values


def assert_safe_key(key: str) -> None:
    """The contract's invariants for every rendered key."""
    assert key, "key is empty"
    assert not key.startswith("/")
    assert ".." not in key
    assert "\\" not in key
    for segment in key.split("/"):
        assert segment not in {"", ".", ".."}
        assert len(segment.encode("utf-8")) <= 255
        assert segment == segment.strip()
        assert not segment.endswith(".")
        assert not any(unicodedata.category(char) in CONTROL_CATEGORIES for char in segment)
        assert not any(char in segment for char in ':*?"<>|')


# --- slugify --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("description", "slug"),
    [
        ("Red bicycle on a street", "red-bicycle-on-a-street"),
        ("  Red   bicycle -- on a STREET!  ", "red-bicycle-on-a-street"),
        ("Café crème brûlée", "cafe-creme-brulee"),
        ("Straße in Øresund", "strasse-in-oresund"),
        ("🚲 Bike ride 🌅", "bike-ride"),
        ("../../etc/passwd", "etc-passwd"),
        ("..\\..\\win", "win"),
        ("tab\there\x00nul\nnewline\x1b[31mred", "tab-here-nul-newline-31mred"),
        ("ﬁne ligature", "fine-ligature"),
    ],
)
def test_slug_is_ascii_lower_case_and_dash_joined(description: str, slug: str) -> None:
    assert slugify(description) == slug


@pytest.mark.parametrize("description", ["", None, "   ", "🚲🌅", "日本語", "!!!---???"])
def test_slug_of_nothing_usable_is_untitled(description: str | None) -> None:
    assert slugify(description) == "untitled"


def test_long_description_is_cut_at_a_word_boundary() -> None:
    description = " ".join(["bicycle", "street", "evening", "city"] * 1250)  # ~5,000 chars
    full = slugify(description, max_length=100_000)
    slug = slugify(description)
    assert len(description) > 5_000
    assert 40 < len(slug) <= 60
    assert full.startswith(slug) and full[len(slug)] == "-"


def test_slug_without_a_nearby_boundary_is_cut_mid_word() -> None:
    assert slugify("a" * 100) == "a" * 60
    assert slugify("short " + "b" * 100) == "short-" + "b" * 54


def test_slug_respects_max_length_and_never_ends_with_a_dash() -> None:
    slug = slugify("one two three four five six", max_length=9)
    assert slug == "one-two"
    for length in range(1, 40):
        cut = slugify("ab-cd-ef-gh-ij-kl-mn-op-qr-st", max_length=length)
        assert len(cut) <= length and not cut.endswith("-") and not cut.startswith("-")


# --- templates are checked at construction ---------------------------------------------


def test_template_fields_are_the_contract_fields() -> None:
    assert TEMPLATE_FIELDS == set(
        "source media_type media_id license_id license size ext slug "
        "contributor original_filename username licensed".split()
    )
    assert DEFAULT_TEMPLATE == "{source}/{media_type}/{media_id}-{slug}.{ext}"
    default_fields = {"source", "media_type", "media_id", "slug", "ext"}
    assert KeyTemplate(DEFAULT_TEMPLATE).fields == default_fields


def test_unknown_field_names_the_key_and_the_field() -> None:
    with pytest.raises(ConfigError) as caught:
        KeyTemplate("{source}/{colour}/{media_id}.{ext}")
    message = str(caught.value)
    assert caught.value.key == "naming.template"
    assert caught.value.exit_code == 2
    assert "naming.template" in message and "{colour}" in message
    assert "media_id" in message  # the known fields are listed


def test_every_unknown_field_is_named() -> None:
    with pytest.raises(ConfigError, match=r"\{colour\}, \{shape\}"):
        KeyTemplate("{shape}/{colour}/{media_id}")


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("{}/{media_id}", "positional"),
        ("{0}/{media_id}", "positional"),
        ("{source.x}/{media_id}", "attribute or index"),
        ("{source[0]}/{media_id}", "attribute or index"),
        ("{source!r}/{media_id}", "conversion"),
        ("{media_id:{size}}", "nested"),
        ("{media_id:d}.{ext}", "cannot be rendered"),
        ("{media_id:%Y}.{ext}", "cannot be rendered"),
        ("{source}/{slug}.{ext}", "media_id"),
        ("{original_filename}", "media_id"),
        ("/x/{media_id}", "absolute"),
        ("\\x\\{media_id}", "absolute"),
        ("{source}/../{media_id}", r"'\.\.' segment"),
        ("./{media_id}", r"'\.\.' segment"),
        ("{source/{media_id}", "not a valid template"),
        ("{media_id}}", "not a valid template"),
    ],
)
def test_bad_templates_are_config_errors(template: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason) as caught:
        KeyTemplate(template)
    assert caught.value.key == "naming.template"
    assert str(caught.value).startswith("naming.template: ")


@pytest.mark.parametrize(
    "template",
    [
        DEFAULT_TEMPLATE,
        "{licensed:%Y/%m}/{media_id}.{ext}",
        "{media_id:0>12}.{ext}",
        "{license_id}.{ext}",
        "{{archive}}/{media_id}",
        "{source}/{contributor}/{original_filename}-{media_id}",
    ],
)
def test_good_templates_are_accepted(template: str) -> None:
    assert KeyTemplate(template).render(record())


# --- rendering -------------------------------------------------------------------------


def test_default_template_renders_a_typical_record() -> None:
    key = KeyTemplate(DEFAULT_TEMPLATE).render(record())
    assert key == "shutterstock/image/1079756147-red-bicycle-on-a-street.jpg"


def test_licensed_spec_slashes_make_directories() -> None:
    key = KeyTemplate("{source}/{licensed:%Y/%m}/{media_id}.{ext}").render(record())
    assert key == "shutterstock/2024/05/1079756147.jpg"


def test_licensed_without_spec_is_an_iso_date_and_accepts_iso_strings() -> None:
    template = KeyTemplate("{licensed}/{media_id}")
    assert template.render(record()) == "2024-05-17/1079756147"
    assert template.render(record(licensed="2023-01-02T03:04:05Z")) == "2023-01-02/1079756147"
    assert KeyTemplate("{licensed:%Y/%m}/{media_id}").render(record(licensed=None)) == "1079756147"


def test_format_specs_apply() -> None:
    assert KeyTemplate("{media_id:0>12}.{ext}").render(record(media_id="42")) == "000000000042.jpg"


def test_literal_braces_survive() -> None:
    assert KeyTemplate("{{x}}/{media_id}").render(record()) == "{x}/1079756147"


@pytest.mark.parametrize(
    "hostile",
    ["../../etc/passwd", "..\\..\\win", "/etc/passwd", "a/b/c/d", "\\\\server\\share", "..", "/"],
)
def test_values_never_create_path_structure(hostile: str) -> None:
    template = KeyTemplate("{source}/{media_id}-{original_filename}")
    key = template.render(record(original_filename=hostile, slug=hostile))
    assert key.split("/")[0] == "shutterstock"
    assert len(key.split("/")) == 2
    assert_safe_key(key)


def test_traversal_values_render_as_flat_names() -> None:
    template = KeyTemplate("{media_id}/{original_filename}")
    traversal = template.render(record(original_filename="../../etc/passwd"))
    assert traversal == "1079756147/.-.-etc-passwd"
    assert template.render(record(original_filename="/etc/passwd")) == "1079756147/-etc-passwd"


def test_media_id_of_dots_is_refused_rather_than_colliding() -> None:
    template = KeyTemplate(DEFAULT_TEMPLATE)
    for media_id in ["..", ".", "", None, " / ", "\x00"]:
        with pytest.raises(ValueError, match="identifying"):
            template.render(record(media_id=media_id))


def test_another_identifying_field_is_enough() -> None:
    key = KeyTemplate("{license_id}/{media_id}").render(record(media_id=".."))
    assert key == "e123abc456"


def test_control_characters_are_removed() -> None:
    contributor = "Ja\x00ne\n\r\tDo\x1b[31me\u202egpj.exe\u200b\u2028"
    key = KeyTemplate("{contributor}/{media_id}").render(record(contributor=contributor))
    assert key == "JaneDo[31megpj.exe/1079756147"
    assert_safe_key(key)


def test_emoji_and_accents_are_kept_in_nfc() -> None:
    key = KeyTemplate("{media_id}/{original_filename}").render(
        record(original_filename="🚲 Cafe\u0301 ride.jpg")
    )
    assert key == "1079756147/🚲 Café ride.jpg"


def test_windows_unsafe_characters_become_underscores() -> None:
    key = KeyTemplate("{media_id}/{original_filename}").render(
        record(original_filename='a:b*c?d"e<f>g|h.jpg')
    )
    assert key == "1079756147/a_b_c_d_e_f_g_h.jpg"


def test_edge_whitespace_trailing_dots_and_empty_values_are_trimmed() -> None:
    template = KeyTemplate("{media_id}/{original_filename}")
    assert template.render(record(original_filename="  name. . ")) == "1079756147/name"
    assert template.render(record(original_filename="photo...jpg")) == "1079756147/photo.jpg"
    assert template.render(record(original_filename=" ")) == "1079756147"
    no_ext = KeyTemplate(DEFAULT_TEMPLATE).render(record(ext=None))
    assert no_ext == "shutterstock/image/1079756147-red-bicycle-on-a-street"


def test_missing_values_render_as_empty() -> None:
    values = record()
    del values["contributor"]
    assert KeyTemplate("{contributor}/{media_id}").render(values) == "1079756147"


def test_long_description_keeps_slug_and_segment_short() -> None:
    key = KeyTemplate(DEFAULT_TEMPLATE).render(record(slug=slugify("word " * 1000)))
    assert len(key.split("/")[-1]) <= len("1079756147-") + 60 + len(".jpg")
    assert_safe_key(key)


@pytest.mark.parametrize("char", ["é", "日", "🚲", "a"])
def test_long_multibyte_names_are_cut_to_255_bytes_keeping_the_extension(char: str) -> None:
    name = char * 1000 + ".jpg"
    key = KeyTemplate("{media_id}/{original_filename}").render(record(original_filename=name))
    last = key.split("/")[-1]
    assert len(last.encode("utf-8")) <= 255
    assert last.endswith(".jpg")
    assert last.startswith(char * 10)
    assert_safe_key(key)


def test_long_directory_segments_are_cut_too() -> None:
    key = KeyTemplate("{contributor}/{media_id}.{ext}").render(record(contributor="日" * 1000))
    assert len(key.split("/")[0].encode("utf-8")) <= 255
    assert key.endswith("/1079756147.jpg")
    assert_safe_key(key)


def test_cut_names_stay_distinct_when_the_cut_removes_the_media_id() -> None:
    template = KeyTemplate("{original_filename}-{media_id}.{ext}")
    shared = "x" * 400
    first = template.render(record(original_filename=shared, media_id="1"))
    second = template.render(record(original_filename=shared, media_id="2"))
    assert first != second
    assert_safe_key(first)
    assert_safe_key(second)


def test_rendering_is_deterministic() -> None:
    values = record(original_filename="日" * 500, contributor="\u202eevil\x00", slug="ünï")
    template = "{contributor}/{media_id}/{original_filename}-{slug}"
    keys = {KeyTemplate(template).render(values) for _ in range(5)}
    assert len(keys) == 1


# --- fuzz ------------------------------------------------------------------------------

NASTY_PIECES = [
    "..", ".", "/", "\\", "\x00", "\n", "\r", "\t", "\x1b", "\x7f", "\u202e", "\u200d",
    "\u200b", "\u2028", "\ufeff", "\ud800", " ", "\u00a0", ":", "*", "?", '"', "<", ">",
    "|", "~", "-", "🚲", "👨\u200d👩\u200d👧", "é", "e\u0301", "日本", "Ω", "a", "Z", "9",
    "%", "{", "}", "con", "nul", "...", " . ",
]

FUZZ_TEMPLATES = [
    DEFAULT_TEMPLATE,
    "{media_id}/{original_filename}",
    "{original_filename}-{media_id}.{ext}",
    "{contributor}/{licensed:%Y/%m}/{license_id}-{slug}.{ext}",
    "{source}/{username}/{size}/{license}/{media_type}/{media_id}",
]


def nasty_string(rng: random.Random) -> str:
    """A random mix of traversal, control, unsafe, multi-byte and plain pieces."""
    return "".join(rng.choice(NASTY_PIECES) for _ in range(rng.choice([0, 1, 3, 20, 200])))


def test_fuzzed_values_always_render_safe_keys() -> None:
    rng = random.Random(20240517)
    templates = [KeyTemplate(template) for template in FUZZ_TEMPLATES]
    rendered = refused = 0
    for _ in range(3_000):
        values = {field: nasty_string(rng) for field in TEMPLATE_FIELDS - {"licensed"}}
        values["licensed"] = datetime(2024, 5, 17, tzinfo=timezone.utc)
        if rng.random() < 0.5:
            values["slug"] = slugify(values["slug"])
        for template in templates:
            try:
                key = template.render(values)
            except ValueError:
                used = template.fields & {"media_id", "license_id"}
                identifying = [values[field] for field in used]
                assert not any(char.isalnum() for value in identifying for char in value)
                refused += 1
                continue
            assert_safe_key(key)
            assert template.render(values) == key
            rendered += 1
    assert rendered > 1_000 and refused > 0
