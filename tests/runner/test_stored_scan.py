"""runner._stored_scan: the stored data of an extra relation is a results directory of Parquet files (an
intermediate table's version) or one Parquet file (an ID mapping table's last job); missing data is a catalog
error (the query then ends FAILED with INVALID_RESOURCE), never a crash."""

from __future__ import annotations

import duckdb
import pytest

from opencleanrooms import catalog
from opencleanrooms.runner import _stored_scan


def _write(path) -> None:
    duckdb.connect().execute(f"COPY (SELECT 'p1' AS sourceid, 'v1' AS targetid) TO '{path}' (FORMAT PARQUET)")


def test_one_parquet_file(tmp_path):
    path = tmp_path / "job.parquet"
    _write(path)
    scan = _stored_scan(str(path))
    assert scan.files == (str(path),)
    assert duckdb.connect().execute(f"SELECT * FROM {scan.sql()}").fetchall() == [("p1", "v1")]


def test_a_directory_of_parquet_files(tmp_path):
    for name in ("b.parquet", "a.parquet"):
        _write(tmp_path / name)
    (tmp_path / "c.parquet.partial").write_text("not yet")
    scan = _stored_scan(tmp_path.as_uri() + "/")
    assert scan.files == (str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet"))


@pytest.mark.parametrize("name", ["gone.parquet", "gone-directory"])
def test_missing_data_is_unreadable(tmp_path, name):
    with pytest.raises(catalog.TableUnreadable):
        _stored_scan(str(tmp_path / name))
