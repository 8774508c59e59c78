"""Checks for text that callers send, before it is stored and shown to other people.

`check_text` refuses what no name or label needs and what makes stored text lie about
itself: control characters (NUL, escapes), invisible format characters (bidi overrides and
isolates such as U+202E, zero-width spaces and joiners), lone surrogates, and line or
paragraph separators. `check_domain` refuses a domain label whose letters come from more
than one script (a Cyrillic "а" among Latin letters), except the mixes a language needs
(Japanese, Chinese, Korean with Latin: UTS #39's "highly restrictive" level).
"""

from __future__ import annotations

import functools
import unicodedata

from crm_runtime.errors import InvalidField

_REFUSED = {
    "Cc": "control characters",
    "Cf": "invisible formatting characters",
    "Cs": "unpaired surrogates",
    "Zl": "line separators",
    "Zp": "paragraph separators",
}
_MULTILINE = frozenset("\n\t")  # what free text may keep of the control characters

# Script of a letter from its Unicode name (the stdlib has no script property): the first
# word, with these exceptions. Letters with these first words belong to no one script.
_PREFIX_SCRIPT = {"CJK": "HAN", "IDEOGRAPHIC": "HAN", "KATAKANA-HIRAGANA": "KATAKANA"}
_WIDTH_WORDS = frozenset({"FULLWIDTH", "HALFWIDTH"})
_NO_SCRIPT = frozenset({"MODIFIER", "SCRIPT", "DOUBLE-STRUCK", "MATHEMATICAL", "BLACK-LETTER",
                        "PLANCK", "KELVIN", "ANGSTROM", "OHM", "INVERTED", "TURNED", "ROMAN"})
# Mixes a label may have (UTS #39 section 5.2, highly restrictive).
_ALLOWED_MIXES = (frozenset({"LATIN", "HAN", "HIRAGANA", "KATAKANA"}),
                  frozenset({"LATIN", "HAN", "BOPOMOFO"}),
                  frozenset({"LATIN", "HAN", "HANGUL"}))


def _describe(char: str) -> str:
    name = unicodedata.name(char, "")
    return f"U+{ord(char):04X} {name}".rstrip()


def check_text(field: str, value: str, *, multiline: bool = False) -> str:
    """`value` if it holds none of the refused characters, else InvalidField naming the first.

    `multiline` lets free text keep line feeds and tabs; names and labels never need them.
    """
    if value.isascii() and value.isprintable():
        return value  # the common case, without a per-character look-up
    for position, char in enumerate(value):
        refused = _REFUSED.get(unicodedata.category(char))
        if refused and not (multiline and char in _MULTILINE):
            raise InvalidField(field, f"must not contain {refused} ({_describe(char)} at position {position})")
    return value


@functools.lru_cache(maxsize=4096)
def script_of(char: str) -> str | None:
    """The script of a letter ("LATIN", "CYRILLIC", "HAN", ...); None for digits, hyphens,
    combining marks and letters shared by all scripts."""
    if not unicodedata.category(char).startswith("L"):
        return None
    words = unicodedata.name(char, "").split()
    while words and words[0] in _WIDTH_WORDS:
        words.pop(0)
    if not words or words[0] in _NO_SCRIPT:
        return None
    return _PREFIX_SCRIPT.get(words[0], words[0])


def label_scripts(label: str) -> frozenset[str]:
    return frozenset(script for char in label if (script := script_of(char)) is not None)


def check_domain(field: str, domain: str) -> str:
    """`domain` if none of its labels mixes scripts (beyond the allowed mixes), else InvalidField."""
    if domain.isascii():
        return domain  # one script: Latin
    for label in domain.split("."):
        scripts = label_scripts(label)
        if len(scripts) > 1 and not any(scripts <= allowed for allowed in _ALLOWED_MIXES):
            names = " and ".join(sorted(script.title() for script in scripts))
            raise InvalidField(field, f"the domain label {label!r} mixes {names} letters, "
                                      "as look-alike domains do")
    return domain


def text_field(field: str, raw: object, maximum: int, *, required: bool) -> str | None:
    """A caller's one-line text: a string, trimmed with inner runs of white space made one
    space, at most `maximum` characters, through `check_text`; None when blank and optional."""
    if raw is not None and not isinstance(raw, str):
        raise InvalidField(field, "must be a string")
    value = " ".join((raw or "").split())
    if not value:
        if required:
            raise InvalidField(field, "is required")
        return None
    if len(value) > maximum:
        raise InvalidField(field, f"must be at most {maximum} characters")
    return check_text(field, value)


IDENTIFIER_MAX = 200  # subjects, owner ids and idempotency keys from other systems


def plain_identifier(field: str, raw: object, maximum: int = IDENTIFIER_MAX) -> str:
    """A short printable identifier: what subjects, owner ids and keys must be."""
    if raw is not None and not isinstance(raw, str):
        raise InvalidField(field, "must be a string")
    value = (raw or "").strip()
    if not value:
        raise InvalidField(field, "is required")
    if len(value) > maximum:
        raise InvalidField(field, f"must be at most {maximum} characters")
    check_text(field, value)  # names the character; isprintable below also refuses separators
    if not value.isprintable():
        raise InvalidField(field, "must not contain control characters")
    return value
