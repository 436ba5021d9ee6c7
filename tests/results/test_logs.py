"""Analysis log export files: the key layout, atomic local writes, refused prefixes and ids. (S3 writes are read back
from moto's server in tests/e2e/test_analysis_log_exports.py.)"""

from __future__ import annotations

import json
import urllib.parse
import uuid

import pytest

from opencleanrooms.results import LocalDestination, ResultWriteError
from opencleanrooms.results.logs import LOG_FILE, log_export_key, write_log_export

C, Q, E = (str(uuid.uuid4()) for _ in range(3))


def test_the_key_names_collaboration_query_and_export():
    assert log_export_key("logs/daily/", C, Q, E) == f"logs/daily/{C}/{Q}/{E}/{LOG_FILE}"
    assert log_export_key("", C, Q, E) == f"{C}/{Q}/{E}/{LOG_FILE}"
    assert log_export_key("//a//b//", C, Q, E) == f"a/b/{C}/{Q}/{E}/{LOG_FILE}"


@pytest.mark.parametrize("prefix", ["..", "a/../b", "./x", "a b", "x\n"])
def test_bad_prefixes_are_refused(prefix):
    with pytest.raises(ValueError):
        log_export_key(prefix, C, Q, E)


@pytest.mark.parametrize("ids", [("../x", Q, E), (C, "a/b", E), (C, Q, ""), (C, Q, "..")])
def test_bad_ids_are_refused(ids):
    with pytest.raises(ValueError):
        log_export_key("p", *ids)


def test_a_local_export_is_written_whole_and_read_back(tmp_path):
    events = [{"event": "QueryAccepted", "queryText": "SELECT ?"}, {"event": "QueryEnded", "status": "SUCCESS"}]
    uri = write_log_export(events, destination=LocalDestination(str(tmp_path), "bucket", "p/q"), collaboration_id=C,
                           query_id=Q, export_id=E)
    path = tmp_path / "bucket" / "p" / "q" / C / Q / E / LOG_FILE
    assert uri == "file://" + urllib.parse.quote(str(path))
    assert [json.loads(line) for line in path.read_text().splitlines()] == events
    assert [p.name for p in path.parent.iterdir()] == [LOG_FILE]  # no temporary file left behind
    with pytest.raises(ValueError):
        write_log_export(events, destination=LocalDestination(str(tmp_path), "Bad_Bucket", ""), collaboration_id=C,
                         query_id=Q, export_id=E)


def test_a_directory_that_cannot_be_written_is_a_write_error(tmp_path):
    (tmp_path / "bucket").write_text("a file where the bucket's directory should be")
    with pytest.raises(ResultWriteError) as info:
        write_log_export([], destination=LocalDestination(str(tmp_path), "bucket", ""), collaboration_id=C,
                         query_id=Q, export_id=E)
    assert info.value.code == "INTERNAL_ERROR" and str(tmp_path) not in info.value.message
