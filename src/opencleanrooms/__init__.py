"""OpenCleanRooms: a self-hosted, wire-compatible AWS Clean Rooms (2022-02-17) server."""

__version__ = "0.1.0"
