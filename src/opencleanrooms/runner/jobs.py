"""Runs one protected (PySpark) job: check the artifacts, prepare the tables, run the code sandboxed, deliver.

1. The template's artifacts are read from the server's S3 endpoint and their SHA-256 compared with the hashes
   recorded when the template was created (what the table owners approved); any difference, or an artifact gone,
   fails the job before any of its code runs.
2. Each referenced table is read through the query engine (only the configured table's allowed columns) and
   written as Parquet into the job's directory, which the sandbox binds read-only: the job never sees the
   catalog, the data's real location or another table.
3. The launcher (runner/job_launcher.py) runs in the sandbox (runner/sandbox.py) with a local PySpark session;
   the time limit and cancellation kill the sandbox.
4. Each DataFrame the entry point returned is delivered as CSV under `<keyPrefix>/<job id>/<name>/` of every
   receiver's result location, like a query result (results/).

The job's directory is removed afterwards, whatever happened. Errors are `{code, message}` (ProtectedJobError);
what the job's own code says in an error reaches the job's runner only when the template asks for DETAILED error
messages, as AWS does.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import re
import shutil
import stat
import sys
import tempfile
import time

from opencleanrooms import catalog, objstore, results
from opencleanrooms.engines import CancelToken, EngineError, Limits, QueryCancelled, TableScan
from opencleanrooms.runner import sandbox as sandboxes

log = logging.getLogger("opencleanrooms.jobs")

LAUNCHER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "job_launcher.py")
MAX_ARTIFACT_BYTES = 1024 ** 3
MAX_OUTPUT_BYTES = 4 * 1024 ** 3
_RESULT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]{0,127}")
_STAGE_MESSAGES = {
    "SPARK_START": "The job's Spark session could not start.",
    "TABLES": "The job's tables could not be loaded into its Spark session.",
    "LOAD_SCRIPT": "The analysis template's user script could not be loaded (no entrypoint(context), or an error "
                   "while importing it).",
    "RUN": "The analysis template's entrypoint(context) raised an error.",
    "RESULTS": "The analysis template's entrypoint(context) did not return {'results': {name: DataFrame}} or its "
               "results could not be written.",
}


class JobFailed(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class JobExecutor:
    def __init__(self, db, s3: catalog.S3Settings | None, settings, engine) -> None:
        self._db, self._s3, self._settings, self._engine = db, s3, settings, engine

    def execute(self, row, token: CancelToken) -> tuple[str, dict]:
        spec = row["spec"]
        if token.cancelled:
            return "CANCELLED", {}
        work = None
        try:
            _check_runtime(self._settings.jobs.sandbox)
            root = self._settings.scratch_dir
            if root:
                os.makedirs(root, exist_ok=True)
            work = tempfile.mkdtemp(prefix=f"ocr-job-{row['id']}-", dir=root)
            dirs = {name: os.path.join(work, name) for name in ("artifacts", "tables", "scratch", "output", "etc")}
            for path in dirs.values():
                os.makedirs(path)
            os.chmod(work, 0o700)
            marks = [time.monotonic()]
            entry, python_path = self._fetch_artifacts(spec["artifacts"], dirs["artifacts"])
            tables = self._materialize(spec["tables"], dirs["tables"], token)
            marks.append(time.monotonic())
            self._run_sandboxed(row, spec, dirs, entry, python_path, tables, token)
            marks.append(time.monotonic())
            outputs = _outputs(dirs["output"])
            locations = [self._deliver(output, outputs, row["id"]) for output in spec["outputs"]]
            marks.append(time.monotonic())
            log.info("job %s: artifacts and tables %.1f s, sandbox %.1f s, delivery %.1f s", row["id"],
                     *(b - a for a, b in zip(marks, marks[1:])))
        except JobFailed as exc:
            return "FAILED", {"error": {"code": exc.code, "message": exc.message}}
        except (QueryCancelled, sandboxes.SandboxCancelled):
            return "CANCELLED", {}
        finally:
            if work is not None:
                shutil.rmtree(work, ignore_errors=True)
        deliveries = [{"accountId": o["account_id"], "location": loc} for o, loc in zip(spec["outputs"], locations)]
        return "SUCCESS", {"result": _result(spec["outputs"], locations), "deliveries": deliveries}

    # -------------------------------------------------------------------------------------------- steps

    def _fetch_artifacts(self, artifacts: list[dict], directory: str) -> tuple[str, list[str]]:
        """Download the artifacts and check each against its approved SHA-256; the entry point's path inside
        the sandbox, and the additional artifacts Python can import from (.py, .zip)."""
        if self._s3 is None or not (self._s3.endpoint_url or self._s3.access_key_id):
            raise JobFailed("INVALID_RESOURCE", "The analysis template's artifacts cannot be read: this server has "
                                                "no S3 endpoint configured.")
        inside, python_path = None, []
        for index, artifact in enumerate(artifacts):
            uri = f"s3://{artifact['bucket']}/{artifact['key']}"
            try:
                data = objstore.get_bytes(self._s3, artifact["bucket"], artifact["key"])
            except objstore.ObjectStoreError as exc:
                if exc.code == objstore.TRANSIENT_ERROR:
                    raise JobFailed("TRANSIENT_ERROR", f"The artifact {uri} could not be read; try again.") from None
                raise JobFailed("INVALID_RESOURCE", f"The artifact {uri} was removed or cannot be read; the job "
                                                    "was not run.") from None
            digest = hashlib.sha256(data).hexdigest()
            if len(data) > MAX_ARTIFACT_BYTES or digest != artifact["sha256"]:
                raise JobFailed("INVALID_RESOURCE", f"The artifact {uri} was modified after the analysis template "
                                                    f"was created: its SHA-256 is {digest}, the template's is "
                                                    f"{artifact['sha256']}. The job was not run.")
            if index == 0:
                name = "user_script.py"
            else:
                base = "".join(c if c.isalnum() or c in "._-" else "_" for c in os.path.basename(artifact["key"]))
                importable = base.endswith(".py") and base[:-3].isidentifier() and base != "user_script.py"
                name = base if importable else f"{index}-{base or 'artifact'}"  # a module keeps its name
            with open(os.path.join(directory, name), "wb") as handle:
                handle.write(data)
            if index == 0:
                inside = f"/job/artifacts/{name}"
            elif name.endswith((".py", ".zip")):
                python_path.append(f"/job/artifacts/{name}" if name.endswith(".zip") else "/job/artifacts")
        return inside, list(dict.fromkeys(python_path))

    def _materialize(self, tables: list[dict], directory: str, token: CancelToken) -> dict[str, str]:
        """Each table's allowed columns as Parquet; table name -> its path inside the sandbox."""
        import pyarrow.parquet as pq

        inside = {}
        limits = Limits(timeout_seconds=self._settings.jobs.timeout_seconds,
                        memory_limit_mb=self._settings.limits.memory_limit_mb)
        for index, table in enumerate(tables):
            try:
                with self._db.read() as conn:
                    source = catalog.require_table(conn, table["account_id"], table["region"], table["database"],
                                                   table["table"])
                scan = TableScan(name=f"t{index}", scan=catalog.prepare_scan(source, self._s3),
                                 columns=tuple(table["columns"]), label=table["name"])
                columns = ", ".join('"' + c.replace('"', '""') + '"' for c in table["columns"])
                data = self._engine.execute(f'SELECT {columns} FROM "t{index}"', [scan], limits, token)
            except catalog.CatalogError as exc:
                log.warning("job: table %s cannot be read: %s", table["name"], exc)
                raise JobFailed("INVALID_RESOURCE", f"The data of table {table['name']} is missing or cannot be "
                                                    "read.") from None
            except QueryCancelled:
                raise
            except EngineError as exc:
                raise JobFailed(exc.code, f"Table {table['name']} could not be prepared: {exc.message}") from None
            pq.write_table(data, os.path.join(directory, f"{table['name']}.parquet"))
            inside[table["name"]] = f"/job/tables/{table['name']}.parquet"
        return inside

    def _run_sandboxed(self, row, spec: dict, dirs: dict, entry: str, python_path: list[str], tables: dict,
                       token: CancelToken) -> None:
        import pyspark

        jobs = self._settings.jobs
        launch = {"output_dir": "/job/output", "scratch_dir": "/job/scratch", "tables": tables, "entry_point": entry,
                  "python_path": python_path, "parameters": spec.get("parameters") or {}, "memory_mb": jobs.memory_mb,
                  "cores": 2}
        with open(os.path.join(dirs["scratch"], "spec.json"), "w") as handle:
            json.dump(launch, handle)
        sandboxes.write_etc(dirs["etc"])
        box = sandboxes.Sandbox(
            readonly={"/job/artifacts": dirs["artifacts"], "/job/tables": dirs["tables"], "/job/launcher.py": LAUNCHER},
            writable={"/job/scratch": dirs["scratch"], "/job/output": dirs["output"]},
            env={"JAVA_HOME": sandboxes.java_home() or "", "SPARK_HOME": os.path.dirname(pyspark.__file__),
                 "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable,
                 "SPARK_LOCAL_IP": "127.0.0.1", "HADOOP_USER_NAME": "job", "SPARK_USER": "job"},
            cwd="/job/scratch", bwrap=jobs.sandbox)
        log_path = os.path.join(os.path.dirname(dirs["output"]), "job.log")
        try:
            sandboxes.run(box, [sys.executable, "-I", "/job/launcher.py", "/job/scratch/spec.json"],
                          etc_dir=dirs["etc"], timeout=jobs.timeout_seconds, cancel=token, log_path=log_path)
        except sandboxes.SandboxTimedOut:
            raise JobFailed("INSUFFICIENT_COMPUTE", f"The job did not finish within this server's time limit of "
                                                    f"{jobs.timeout_seconds:g} seconds and was stopped.") from None
        except sandboxes.SandboxUnavailable as exc:
            log.error("job %s: %s; %s", row["id"], exc, _tail(log_path))
            raise JobFailed("INTERNAL_ERROR", "This server cannot run PySpark jobs: its job sandbox (bubblewrap) "
                                              "could not be set up. Jobs never run outside the sandbox.") from None
        status = _status(dirs["output"])
        if not status.get("ok"):
            log.info("job %s failed in stage %s; %s", row["id"], status.get("stage"), _tail(log_path))
            stage = status.get("stage") if status.get("stage") in _STAGE_MESSAGES else None
            message = _STAGE_MESSAGES.get(stage, "The job's code failed.")
            if spec.get("detailed_errors") and isinstance(status.get("error"), str):
                message += " " + status["error"][:1000]
            raise JobFailed("USER_CODE_ERROR" if stage in ("LOAD_SCRIPT", "RUN", "RESULTS") else "INTERNAL_ERROR",
                            message)

    def _deliver(self, output: dict, outputs: dict, job_id: str) -> str:
        """Write every result DataFrame for one receiver; the location of the job's results there."""
        prefix = "/".join(s for s in [*output["key_prefix"].split("/"), job_id] if s)
        location = None
        for name, table in outputs.items():
            if self._s3 is not None and self._s3.endpoint_url:
                destination = results.S3Destination(output["bucket"], prefix, self._s3)
            else:
                destination = results.LocalDestination(self._settings.results_dir, output["bucket"], prefix)
            try:
                written = results.write_result(table, fmt="CSV", single_file=False, destination=destination,
                                               query_id=name)
            except results.ResultWriteError as exc:
                raise JobFailed(exc.code, exc.message) from None
            location = written[:-len(name) - 1]  # the job's directory, the parent of each result's
        return location


def _check_runtime(sandbox: str) -> None:
    if shutil.which(sandbox) is None:
        raise JobFailed("INTERNAL_ERROR", "This server cannot run PySpark jobs: bubblewrap (bwrap), the sandbox "
                                          "jobs run in, is not installed. Jobs never run outside the sandbox.")
    if importlib.util.find_spec("pyspark") is None:
        raise JobFailed("INTERNAL_ERROR", "This server cannot run PySpark jobs: PySpark is not installed (pip "
                                          "install 'opencleanrooms[spark]').")
    if sandboxes.java_home() is None:
        raise JobFailed("INTERNAL_ERROR", "This server cannot run PySpark jobs: no Java runtime was found.")


def _status(output_dir: str) -> dict:
    """The launcher's report. The job could have replaced it: it is read without following links and trusted only
    for which stage failed and which outputs to look for."""
    try:
        fd = os.open(os.path.join(output_dir, "_status.json"), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                return {}
            status = json.loads(handle.read(1024 * 1024))
        return status if isinstance(status, dict) else {}
    except (OSError, ValueError):
        return {}


def _check_tree(output_dir: str) -> None:
    """Everything the job left in its output directory is a plain file or directory: a symbolic link (to a host
    file the runner could read) or a FIFO (that would block it) fails the job, and so does too much data."""
    total = 0
    for parent, dirs, files in os.walk(output_dir):
        for name in dirs + files:
            mode = os.lstat(os.path.join(parent, name)).st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise JobFailed("USER_CODE_ERROR", "The job left something other than files and directories in "
                                                   "its output; its results were not delivered.")
            if stat.S_ISREG(mode):
                total += os.lstat(os.path.join(parent, name)).st_size
    if total > MAX_OUTPUT_BYTES:
        raise JobFailed("USER_CODE_ERROR", f"The job's results take more than {MAX_OUTPUT_BYTES} bytes; they were "
                                           "not delivered.")


def _outputs(output_dir: str) -> dict:
    """The result tables the job wrote (name -> Arrow table), read from its output directory."""
    import pyarrow.parquet as pq

    _check_tree(output_dir)
    status = _status(output_dir)
    names = status.get("outputs") if isinstance(status.get("outputs"), list) else []
    found = {}
    for name in names:
        if not isinstance(name, str) or not _RESULT_NAME.fullmatch(name) or not os.path.isdir(
                os.path.join(output_dir, name)):
            raise JobFailed("USER_CODE_ERROR", "The job's results could not be read.")
        try:
            found[name] = pq.read_table(os.path.join(output_dir, name))
        except Exception:  # noqa: BLE001 - whatever the job left there, it is not a result
            raise JobFailed("USER_CODE_ERROR", f"The job's result {name} could not be read.") from None
    if not found:
        raise JobFailed("USER_CODE_ERROR", "The job returned no results.")
    return found


def _result(outputs: list[dict], locations: list[str]) -> dict:
    """ProtectedJobResult: the runner's own S3 location, or the member who receives the results."""
    own = next((location for output, location in zip(outputs, locations) if output["kind"] == "s3"), None)
    if own is not None:
        return {"output": {"s3": {"location": own}}}
    return {"output": {"memberList": [{"accountId": output["account_id"]} for output in outputs]}}


def _tail(path: str, limit: int = 3000) -> str:
    try:
        with open(path, "rb") as handle:
            return handle.read()[-limit:].decode(errors="replace")
    except OSError:
        return ""
