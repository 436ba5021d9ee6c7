"""Testing Clean Rooms code against the real server: what moto's `mock_aws` is to moto, with the real server.

The pytest plugin (`opencleanrooms.testing.plugin`, installed as a `pytest11` entry point) gives the fixtures;
`CleanRoomsServer` can also be used without pytest:

    with CleanRoomsServer() as server:
        alice = server.new_account("alice")
        alice.client.list_collaborations()

Nothing heavy is imported until a name is used, so that loading the plugin costs pytest nothing.
"""

from __future__ import annotations

__all__ = ["Account", "Accounts", "CleanRoomsServer"]


def __getattr__(name: str):
    if name in __all__:
        from opencleanrooms.testing import server

        return getattr(server, name)
    raise AttributeError(name)
