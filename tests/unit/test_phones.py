"""Phone numbers as Indonesian customers and order systems write them."""

import pytest

from domain import phones


@pytest.mark.parametrize(
    "typed",
    [
        "0812-1234-5678",
        "+62 812-1234-5678",
        "62812 1234 5678",
        "081212345678",
        "0062 812 1234 5678",
        "812-1234-5678",
    ],
)
def test_typed_forms_of_one_mobile_number_are_one_e164(typed):
    assert phones.from_user_input(typed, "ID").e164 == "+6281212345678"


def test_wa_id_is_read_without_a_region():
    """A foreign wa_id must not become an Indonesian number (``+6216505551234``)."""
    assert phones.from_wa_id("16505551234").e164 == "+16505551234"
    assert phones.from_wa_id("6281212345678@c.us").e164 == "+6281212345678"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [("12", "not a valid phone number for its country"), ("abc", "not a phone number"), ("", "empty")],
)
def test_invalid_typed_numbers_say_why(raw, reason):
    phone = phones.from_user_input(raw, "ID")
    assert (phone.e164, phone.invalid_reason) == (None, reason)


def test_invalid_wa_ids_say_why():
    assert phones.from_wa_id("999123456").invalid_reason == "unknown country code"
    assert phones.from_wa_id("ID.1502576394655843").invalid_reason.startswith("not a WhatsApp phone id")


def test_masking_keeps_numbers_apart_but_unreadable():
    assert phones.mask("+6281212345678") == "+62*******5678"
