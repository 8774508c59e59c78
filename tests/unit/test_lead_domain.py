import pytest

from crm_leads.domain import Channel, Lead, lead_id_for, validate_capture
from crm_runtime.errors import InvalidField


def capture(**overrides):
    values = dict(name=" Ada Lovelace ", email="Ada@Example.COM", phone="020 7183 8750",
                  company="Analytical Engines", channel="Web")
    values.update(overrides)
    return validate_capture(**values, default_region="GB")


def test_capture_normalises_email_phone_name_and_channel():
    details = capture()
    assert details.name == "Ada Lovelace"
    assert details.email == "Ada@example.com"  # domain lower-cased, local part kept
    assert details.phone == "+442071838750"
    assert details.channel is Channel.WEB


def test_phone_is_optional():
    assert capture(phone="").phone == ""
    assert capture(phone=None).phone == ""


@pytest.mark.parametrize("field,value", [
    ("name", ""), ("name", "   "), ("name", "x" * 201),
    ("email", ""), ("email", "not-an-email"), ("email", "a@b"),
    ("phone", "12"), ("phone", "not a phone"),
    ("channel", "fax"), ("channel", ""),
    ("company", "c" * 201),
])
def test_bad_input_names_the_field(field, value):
    with pytest.raises(InvalidField) as caught:
        capture(**{field: value})
    assert caught.value.field == field


def test_same_request_key_names_the_same_lead():
    assert lead_id_for("key-1") == lead_id_for("key-1")
    assert lead_id_for("key-1") != lead_id_for("key-2")
    assert lead_id_for(None) != lead_id_for(None)


def test_new_lead_is_new_and_unowned():
    lead = Lead.capture(capture(), lead_id_for("k"))
    assert lead.status == "new" and lead.owner_id is None and lead.version == 1


def test_assignment_with_the_same_key_is_applied_once():
    lead = Lead.capture(capture(), lead_id_for("k"))
    assert lead.assign("rep-1", "cmd-1") is True
    assert lead.assign("rep-2", "cmd-1") is False
    assert lead.owner_id == "rep-1" and lead.version == 2
    assert lead.assign("rep-2", "cmd-2") is True
    assert lead.owner_id == "rep-2" and lead.version == 3


@pytest.mark.parametrize("owner,key,field", [
    ("", "k", "owner_id"), ("rep", "", "idempotency_key"), ("r" * 201, "k", "owner_id"),
    ("rep", "k" * 201, "idempotency_key"), ("rep\x00", "k", "owner_id"), ("rep", "a\nb", "idempotency_key")])
def test_assignment_needs_owner_and_key(owner, key, field):
    lead = Lead.capture(capture(), lead_id_for("k"))
    with pytest.raises(InvalidField) as caught:
        lead.assign(owner, key)
    assert caught.value.field == field
    assert lead.version == 1
