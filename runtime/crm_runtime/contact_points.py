"""Email addresses and phone numbers as every context stores them: one rule for the platform.

An email is checked for syntax only (a deliverability check is DNS, and a command must not
depend on it), normalised by email-validator, and refused when its domain mixes scripts
(a look-alike domain). A phone is parsed by phonenumbers, a number without a country code
read as one of the service's default region, and stored in E.164 ("+442071838750"). The
same normal forms are what duplicate detection compares.
"""

from __future__ import annotations

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from crm_runtime.errors import InvalidField
from crm_runtime.text import check_domain, text_field

EMAIL_MAX = 320
PHONE_MAX = 40


def normalise_email(raw: object, *, field: str = "email", required: bool = True) -> str | None:
    """The normalised address; None when blank and not required."""
    value = text_field(field, raw, EMAIL_MAX, required=required)
    if value is None:
        return None
    try:
        address = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidField(field, str(exc)) from None
    check_domain(field, address.domain)
    return address.normalized


def normalise_phone(raw: object, default_region: str, *, field: str = "phone") -> str | None:
    """E.164; None when blank."""
    value = text_field(field, raw, PHONE_MAX, required=False)
    if value is None:
        return None
    try:
        number = phonenumbers.parse(value, default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidField(field, f"{value!r} is not a phone number: {exc}") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidField(field, f"{value!r} is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
