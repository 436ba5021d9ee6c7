"""What the job runner (runner/jobs.py) does with a job's output and without its sandbox, with no JVM: an output
tree the job could have planted links or FIFOs in is refused, and no sandbox means no run."""

from __future__ import annotations

import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from opencleanrooms.engines import CancelToken
from opencleanrooms.runner import JobSettings, RunnerSettings
from opencleanrooms.runner.jobs import JobExecutor, JobFailed, _outputs


def _output(tmp_path, outputs=("overlap",)):
    out = tmp_path / "output"
    out.mkdir()
    (out / "_status.json").write_text(json.dumps({"ok": True, "outputs": list(outputs)}))
    return out


def _frame(path):
    path.mkdir()
    pq.write_table(pa.table({"segment": ["a", "b"], "n": [3, 4]}), path / "part-0.parquet")


def test_outputs_are_read_from_plain_files(tmp_path):
    out = _output(tmp_path)
    _frame(out / "overlap")
    (out / "overlap" / "_SUCCESS").write_text("")
    tables = _outputs(str(out))
    assert list(tables) == ["overlap"] and tables["overlap"].to_pylist() == [{"segment": "a", "n": 3},
                                                                             {"segment": "b", "n": 4}]


def test_a_link_planted_in_the_output_is_refused(tmp_path):
    secret = tmp_path / "host-table"
    _frame(secret)  # a Parquet table on the host, which the runner (outside the sandbox) could read
    out = _output(tmp_path)
    os.symlink(secret, out / "overlap")
    with pytest.raises(JobFailed) as failure:
        _outputs(str(out))
    assert failure.value.code == "USER_CODE_ERROR"
    (tmp_path / "second").mkdir()
    out2 = _output(tmp_path / "second")
    _frame(out2 / "overlap")
    os.symlink(secret / "part-0.parquet", out2 / "overlap" / "part-1.parquet")
    with pytest.raises(JobFailed):
        _outputs(str(out2))


def test_a_fifo_or_a_linked_status_is_refused(tmp_path):
    out = _output(tmp_path)
    _frame(out / "overlap")
    os.mkfifo(out / "overlap" / "part-1.parquet")  # reading it would block the runner
    with pytest.raises(JobFailed):
        _outputs(str(out))
    other = tmp_path / "other"
    other.mkdir()
    (other / "status.json").write_text(json.dumps({"ok": True, "outputs": ["overlap"]}))
    linked = other / "output"
    linked.mkdir()
    _frame(linked / "overlap")
    os.symlink(other / "status.json", linked / "_status.json")
    with pytest.raises(JobFailed):  # the link is not followed: no status, no outputs
        _outputs(str(linked))


def test_without_its_sandbox_a_job_fails_and_nothing_runs():
    settings = RunnerSettings(jobs=JobSettings(workers=1, sandbox="no-such-bwrap"))
    status, extra = JobExecutor(None, None, settings, None).execute({"id": "job", "spec": {}}, CancelToken())
    assert status == "FAILED" and extra["error"]["code"] == "INTERNAL_ERROR"
    assert "bubblewrap" in extra["error"]["message"] and "never run outside the sandbox" in extra["error"]["message"]
