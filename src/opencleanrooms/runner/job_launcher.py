"""Runs inside a protected job's sandbox (runner/sandbox.py): starts a local PySpark session, hands the analysis
template's `entrypoint(context)` the job's tables as DataFrames, and writes the DataFrames it returns.

The contract is AWS's user-script contract: `context["sparkSession"]`, `context["referencedTables"]` (table name ->
DataFrame, only the columns the configured table allows) and `context["analysisParameters"]` (name -> value, as
strings); the entry point returns `{"results": {name: DataFrame, ...}}` and each DataFrame is written as Parquet to
`<output>/<name>/`. What happened is written to `<output>/_status.json` for the runner: `{"ok": true, "outputs":
[...]}` or `{"ok": false, "stage": ..., "error": ...}`.

This file is run by path with the venv's Python (`python -I job_launcher.py spec.json`) and imports nothing of
opencleanrooms: the sandbox holds only the interpreter, its packages and the job's directories.
"""

import importlib.util
import json
import os
import re
import sys
import traceback

OUTPUT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]{0,127}")
MAX_ERROR = 2000


def main(spec_path: str) -> int:
    with open(spec_path) as handle:
        spec = json.load(handle)
    output = spec["output_dir"]
    status = {"ok": False, "stage": "SPARK_START"}
    try:
        spark = _session(spec)
        status["stage"] = "TABLES"
        tables = {name: spark.read.parquet(path) for name, path in spec["tables"].items()}
        status["stage"] = "LOAD_SCRIPT"
        for path in spec.get("python_path") or []:
            sys.path.insert(0, path)
        module = _load(spec["entry_point"])
        entrypoint = getattr(module, "entrypoint", None)
        if not callable(entrypoint):
            raise TypeError("the user script defines no function entrypoint(context)")
        status["stage"] = "RUN"
        returned = entrypoint({"sparkSession": spark, "referencedTables": tables,
                               "analysisParameters": dict(spec.get("parameters") or {})})
        status["stage"] = "RESULTS"
        results = _results(returned)
        for name, frame in results.items():
            frame.write.mode("errorifexists").parquet(os.path.join(output, name))
        status = {"ok": True, "outputs": sorted(results)}
    except BaseException as exc:  # noqa: BLE001 - whatever the script does, the runner gets a status
        status["error"] = (f"{type(exc).__name__}: {exc}")[:MAX_ERROR]
        traceback.print_exc()
    with open(os.path.join(output, "_status.json"), "w") as handle:
        json.dump(status, handle)
    return 0 if status["ok"] else 3


def _session(spec: dict):
    from pyspark.sql import SparkSession

    scratch = spec["scratch_dir"]
    builder = (SparkSession.builder.master(f"local[{int(spec.get('cores', 2))}]").appName("protected-job")
               .config("spark.driver.memory", f"{int(spec.get('memory_mb', 1024))}m")
               .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
               .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
               .config("spark.sql.warehouse.dir", os.path.join(scratch, "warehouse"))
               .config("spark.local.dir", os.path.join(scratch, "spark"))
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.sql.shuffle.partitions", "4")
               .config("spark.sql.catalogImplementation", "in-memory"))
    return builder.getOrCreate()


def _load(path: str):
    spec = importlib.util.spec_from_file_location("user_script", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["user_script"] = module
    spec.loader.exec_module(module)
    return module


def _results(returned) -> dict:
    from pyspark.sql import DataFrame

    if not isinstance(returned, dict) or not isinstance(returned.get("results"), dict) or not returned["results"]:
        raise TypeError("entrypoint(context) must return {'results': {name: DataFrame, ...}} with at least one "
                        "DataFrame")
    results = returned["results"]
    for name, frame in results.items():
        if not isinstance(name, str) or not OUTPUT_NAME.fullmatch(name):
            raise ValueError(f"result name {name!r} is not valid: use letters, digits, '_' and '-' (at most 128)")
        if not isinstance(frame, DataFrame):
            raise TypeError(f"result {name!r} is a {type(frame).__name__}, not a DataFrame")
    return results


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
