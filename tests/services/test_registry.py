"""What every registered handler gets from the registry: NUL characters refused, deadlock retries."""

from __future__ import annotations

import pytest

from opencleanrooms.errors import ServiceError
from opencleanrooms.services import registry
from opencleanrooms.storage.database import RetryableError

pytestmark = pytest.mark.backend_independent


def test_a_handler_whose_transaction_was_rolled_back_for_a_deadlock_runs_again(monkeypatch):
    monkeypatch.setattr(registry.time, "sleep", lambda _s: None)
    calls = []

    def handler(ctx, params):
        calls.append(params)
        if len(calls) < 3:
            raise RetryableError("deadlock detected")
        return {"ok": len(calls)}

    assert registry._retrying(handler)(None, {"x": 1}) == {"ok": 3}
    calls.clear()

    def always(ctx, params):
        calls.append(1)
        raise RetryableError("deadlock detected")

    with pytest.raises(RetryableError):
        registry._retrying(always)(None, {})
    assert len(calls) == registry.ATTEMPTS


@pytest.mark.parametrize("params, field", [
    ({"name": "a\x00b"}, "name"),
    ({"tags": {"k": "v\x00"}}, "tags.k"),
    ({"tags": {"k\x00": "v"}}, "tags"),
    ({"members": [{"displayName": "ok"}, {"displayName": "\x00"}]}, "members.1.displayName"),
])
def test_nul_characters_are_refused_on_every_backend_before_the_handler_runs(params, field):
    ran = []
    with pytest.raises(ServiceError) as caught:
        registry._retrying(lambda ctx, p: ran.append(p))(None, params)
    assert caught.value.code == "ValidationException"
    assert caught.value.fields["fieldList"][0]["name"] == field
    assert not ran
