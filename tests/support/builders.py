"""Small helpers that build valid requests, so tests state only what they are about."""

from __future__ import annotations

import time

import botocore.exceptions
import pytest


def poll(fetch, statuses, timeout: float, every: float) -> dict:
    """`fetch()` again every `every` seconds until its "status" is one of `statuses` or `timeout` seconds have
    passed; the last answer either way (the caller asserts on its status)."""
    deadline = time.monotonic() + timeout
    while True:
        answer = fetch()
        if answer["status"] in statuses or time.monotonic() > deadline:
            return answer
        time.sleep(every)


class Party:
    """An account of a test server with its own checked boto3 client."""

    def __init__(self, server) -> None:
        self.account = server.new_account()
        self.id = self.account.account_id
        self.client = server.client(self.account)


def member(party, abilities=(), display_name=None, **extra) -> dict:
    spec = {"accountId": party.id, "memberAbilities": list(abilities),
            "displayName": display_name or f"member {party.id}"}
    spec.update(extra)
    return spec


def create_collaboration(creator, members=(), *, abilities=("CAN_QUERY",), name="collab", **extra) -> dict:
    request = {
        "members": list(members),
        "name": name,
        "description": "a collaboration",
        "creatorMemberAbilities": list(abilities),
        "creatorDisplayName": f"creator {creator.id}",
        "queryLogStatus": "DISABLED",
    }
    request.update(extra)
    return creator.client.create_collaboration(**request)["collaboration"]


def join(party, collaboration_id: str, **extra) -> dict:
    return party.client.create_membership(collaborationIdentifier=collaboration_id, queryLogStatus="DISABLED",
                                          **extra)["membership"]


def raises(code: str, call, *args, **kwargs) -> dict:
    """Assert that a boto3 call fails with the given error code; return the parsed error response."""
    with pytest.raises(botocore.exceptions.ClientError) as info:
        call(*args, **kwargs)
    response = info.value.response
    assert response["Error"]["Code"] == code, response
    return response


def all_pages(client, operation: str, result_key: str, **params) -> list:
    items = []
    for page in client.get_paginator(operation).paginate(**params):
        items.extend(page[result_key])
    return items
