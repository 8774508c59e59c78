"""Callers' text: no control or invisible formatting characters, no look-alike domains."""

import pytest

from crm_leads.domain import Lead, lead_id_for, plain_identifier, validate_capture
from crm_runtime.errors import InvalidField
from crm_runtime.text import check_domain, check_text, label_scripts


@pytest.mark.parametrize("value,named", [
    ("Ada\x00Lovelace", "U+0000"),            # NUL
    ("Ada\x1b[31mLovelace", "U+001B"),         # terminal escape
    ("Ada\nLovelace", "U+000A"),
    ("Ada\x7f", "U+007F"),
    ("Ada\u202eecalevoL", "U+202E RIGHT-TO-LEFT OVERRIDE"),
    ("Ada\u2066x\u2069", "U+2066 LEFT-TO-RIGHT ISOLATE"),
    ("Ad\u200ba", "U+200B ZERO WIDTH SPACE"),
    ("A\u200dda", "U+200D ZERO WIDTH JOINER"),
    ("\ufeffAda", "U+FEFF ZERO WIDTH NO-BREAK SPACE"),
    ("Ada\u2028Lovelace", "U+2028 LINE SEPARATOR"),
    ("Ada\ud800", "U+D800"),                  # a lone surrogate (JSON "\ud800" makes one)
])
def test_control_format_and_separator_characters_are_refused_by_code_point(value, named):
    with pytest.raises(InvalidField) as caught:
        check_text("name", value)
    assert caught.value.field == "name" and named in caught.value.message


@pytest.mark.parametrize("value", ["Ada Lovelace", "Zoë Ñúñez-O'Brien", "Łukasz Żółć", "Иван Петров",
                                   "山田 太郎", "محمد", "שלום", "Nguyễn Thị", "a\u00a0b", "🙂 Ada"])
def test_ordinary_names_in_any_script_pass(value):
    assert check_text("name", value) == value


def test_free_text_may_keep_line_feeds_and_tabs_but_nothing_else():
    assert check_text("notes", "line one\n\tline two", multiline=True)
    with pytest.raises(InvalidField):
        check_text("notes", "line one\r\x00", multiline=True)
    with pytest.raises(InvalidField):
        check_text("notes", "a\u202eb", multiline=True)


@pytest.mark.parametrize("domain,scripts", [
    ("раypal.com", {"CYRILLIC", "LATIN"}),      # Cyrillic р and а among Latin letters
    ("exаmple.org", {"CYRILLIC", "LATIN"}),
    ("gοogle.com", {"GREEK", "LATIN"}),         # Greek omicron
    ("аpple-ελλάδα.net", {"CYRILLIC", "LATIN", "GREEK"}),
])
def test_domain_labels_mixing_scripts_are_refused(domain, scripts):
    assert label_scripts(domain.split(".")[0]) == scripts
    with pytest.raises(InvalidField, match="mixes") as caught:
        check_domain("email", domain)
    assert caught.value.field == "email"


@pytest.mark.parametrize("domain", ["example.com", "bücher.de", "пример.рф", "ελλάδα.gr",
                                    "例え.テスト", "日本語ドメインabc.jp", "한국abc.kr", "中文1-2.cn",
                                    "cafe\u0301.fr", "xn--80ak6aa92e.com", "россия.com"])
def test_single_script_and_language_mixes_pass(domain):
    assert check_domain("email", domain) == domain


def _capture(**overrides):
    values = dict(name="Ada", email="ada@example.com", phone="", company="", channel="web")
    return validate_capture(**{**values, **overrides})


@pytest.mark.parametrize("field,value", [
    ("name", "Ada\x00"), ("name", "Ada \u202egnp.exe"), ("name", "A\u200bda"),
    ("company", "Evil\x1b]0;owned\x07Corp"), ("company", "Acme\u2067"),
    ("email", "ada@раypal.com"), ("email", "ada@xn--ypal-43d9g.com"),  # the same domain, punycoded
])
def test_lead_capture_refuses_them_naming_the_field(field, value):
    with pytest.raises(InvalidField) as caught:
        _capture(**{field: value})
    assert caught.value.field == field


def test_lead_capture_keeps_honest_unicode():
    details = _capture(name="Zoë Ñúñez", company="Société Générale", email="zoë@bücher.de")
    assert details.name == "Zoë Ñúñez" and details.email == "zoë@bücher.de"


@pytest.mark.parametrize("owner", ["rep\x00", "rep\u202e", "rep\u200bada"])
def test_owner_ids_refuse_them_too(owner):
    with pytest.raises(InvalidField) as caught:
        plain_identifier("owner_id", owner)
    assert caught.value.field == "owner_id"
    lead = Lead.capture(_capture(), lead_id_for(None))
    with pytest.raises(InvalidField, match="owner_id"):
        lead.assign(owner, "key-1")
