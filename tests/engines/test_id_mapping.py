"""Rule-based exact-match ID mapping over real files with DuckDB (engines/id_mapping.py)."""

from __future__ import annotations

import duckdb
import pytest

from opencleanrooms.engines.id_mapping import Side, build_mapping


def _csv(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return f"read_csv(['{path}'], header=true)"


def _pairs(path: str) -> list[tuple]:
    return duckdb.connect().execute(f"SELECT sourceid, targetid FROM read_parquet('{path}') ORDER BY 1, 2").fetchall()


def test_keys_match_after_normalization_only(tmp_path):
    source = _csv(tmp_path, "s.csv", "id,email,zip\n1,  A@X.com ,75001\n2,b@x.com,75002\n3,,75003\n4,d  e@x.com,1\n"
                                     ",a@x.com,75001\n")
    target = _csv(tmp_path, "t.csv", "vid,mail,postcode\n10,a@x.com,75001\n11,A@X.COM,75001\n12,b@x.com,99999\n"
                                     "13,,75003\n14,D E@X.COM,1\n")
    out = str(tmp_path / "out" / "map.parquet")
    count = build_mapping(Side(source, "id", ("email", "zip")), Side(target, "vid", ("mail", "postcode")), out)
    # trimmed, lower-cased, whitespace runs collapsed; an empty key part or a NULL id matches nothing; every key
    # column must be equal
    assert _pairs(out) == [("1", "10"), ("1", "11"), ("4", "14")]
    assert count == 3
    assert not (tmp_path / "out" / "map.parquet.partial").exists()


def test_ids_of_any_type_are_text_and_pairs_are_distinct(tmp_path):
    source = _csv(tmp_path, "s.csv", "n,k\n7,x\n7,x\n8,y\n")
    target = _csv(tmp_path, "t.csv", "m,k\n2024-01-01,X\n2024-01-01,x\n")
    out = str(tmp_path / "map.parquet")
    assert build_mapping(Side(source, "n", ("k",)), Side(target, "m", ("k",)), out) == 1
    assert _pairs(out) == [("7", "2024-01-01")]


def test_key_columns_must_pair_up(tmp_path):
    source = _csv(tmp_path, "s.csv", "a,b\n1,2\n")
    with pytest.raises(ValueError):
        build_mapping(Side(source, "a", ("b",)), Side(source, "a", ("a", "b")), str(tmp_path / "m.parquet"))
    with pytest.raises(ValueError):
        build_mapping(Side(source, "a", ()), Side(source, "a", ()), str(tmp_path / "m.parquet"))


def test_unreadable_data_raises_and_leaves_no_file(tmp_path):
    source = _csv(tmp_path, "s.csv", "a,b\n1,2\n")
    out = tmp_path / "m.parquet"
    with pytest.raises(duckdb.Error):
        build_mapping(Side(source, "a", ("missing",)), Side(source, "a", ("b",)), str(out))
    assert not out.exists()
