"""Storage for the table associations family (tables and queries). Tables are created by migration 4."""

from __future__ import annotations

import sqlalchemy as sa

TABLES: list[sa.Table] = []  # every table this module defines, in creation order
