"""Page tokens: round trip, binding, tamper resistance."""

from __future__ import annotations

import pytest

from opencleanrooms.errors import ServiceError
from opencleanrooms.services.pagination import PageTokens

pytestmark = pytest.mark.backend_independent

BINDING = ("ListMemberships", "us-east-1", "111111111111", None)


def test_round_trip_and_first_page():
    tokens = PageTokens(b"k" * 32)
    assert tokens.decode(BINDING, None) is None
    assert tokens.decode(BINDING, tokens.encode(BINDING, 12345)) == 12345
    assert tokens.encode(BINDING, 1) != tokens.encode(BINDING, 2)


@pytest.mark.parametrize("other", [
    ("ListCollaborations", "us-east-1", "111111111111", None),
    ("ListMemberships", "eu-west-1", "111111111111", None),
    ("ListMemberships", "us-east-1", "222222222222", None),
    ("ListMemberships", "us-east-1", "111111111111", "ACTIVE"),
])
def test_tokens_do_not_transfer(other):
    tokens = PageTokens(b"k" * 32)
    with pytest.raises(ServiceError) as info:
        tokens.decode(other, tokens.encode(BINDING, 7))
    assert info.value.code == "ValidationException"


def test_another_key_or_edited_payload_is_rejected():
    tokens = PageTokens(b"k" * 32)
    token = tokens.encode(BINDING, 7)
    with pytest.raises(ServiceError):
        PageTokens(b"another key" * 3).decode(BINDING, token)
    other_payload = tokens.encode(BINDING, 8).split(".")[0]
    with pytest.raises(ServiceError):
        tokens.decode(BINDING, other_payload + "." + token.split(".")[1])  # payload swapped, old signature
    for garbage in ("", ".", "abc", "a.b", token + "x", "\u00e9." + token.split(".")[1]):
        with pytest.raises(ServiceError):
            tokens.decode(BINDING, garbage)
