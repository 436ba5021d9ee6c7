"""Settings are checked for type and range, wherever they come from, so that a bad value is one clear error."""

from __future__ import annotations

import pytest

from opencleanrooms.config import SetupError, Settings, check_region, known_regions

pytestmark = pytest.mark.backend_independent


@pytest.mark.parametrize("field, value, message", [
    ("port", "abc", "port must be an integer from 0 to 65535, not 'abc'"),
    ("port", True, "port must be an integer"),
    ("port", -1, "port must be an integer"),
    ("host", "", "host must be a non-empty string"),
    ("regions", [], "regions must be a non-empty list"),
    ("regions", ["us-east-1", 1], "regions must be a non-empty list"),
    ("workers", "2", "workers must be an integer of at least 1"),
    ("database_url", 5, "database_url must be a SQLAlchemy URL string"),
    ("quotas", {"members": "5"}, "quotas must be a table of integers"),
    ("throttle", "ListCollaborations=5", "throttle must be a list of strings"),
    ("faults", [1], "faults must be a list of tables"),
    ("s3", {"endpoint_url": 9000}, "s3 must be a table of strings"),
    ("query_timeout_seconds", 0, "query_timeout_seconds must be a positive number"),
    ("log_level", "INFO", "log_level must be one of debug, info, warning, error"),
    ("engine", "presto", "engine must be one of duckdb, spark, not 'presto'"),
    ("engine", "spark", "engine spark needs spark_remote (--spark-remote sc://HOST:PORT)"),
    ("spark_remote", "http://spark:15002", "spark_remote must be a Spark Connect URL like sc://127.0.0.1:15002"),
])
def test_bad_values_are_refused_with_their_name(field, value, message):
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        Settings(**{field: value}).validate()


def test_defaults_are_valid():
    assert Settings().validate() == Settings()


def test_config_file_errors_name_the_file(tmp_path):
    with pytest.raises(SetupError, match="cannot read config file .*missing.toml: No such file"):
        Settings.from_toml(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[s3\n")
    with pytest.raises(ValueError, match=f"config file {bad} is not valid TOML"):
        Settings.from_toml(bad)
    typed = tmp_path / "typed.toml"
    typed.write_text('port = "abc"\n')
    with pytest.raises(ValueError, match=f"^{typed}: port must be an integer"):
        Settings.from_toml(typed)


def test_regions_come_from_botocore_endpoint_data():
    cleanrooms, partition = known_regions()
    assert "us-east-1" in cleanrooms and set(cleanrooms) <= set(partition)
    assert "ap-south-1" in partition and "cn-north-1" not in partition  # ARNs here are arn:aws:
    check_region("ap-south-1")
    with pytest.raises(ValueError, match="unknown region 'us-east-99': regions look like us-east-1"):
        check_region("us-east-99")
    with pytest.raises(ValueError, match="unknown region 'cn-north-1'"):
        check_region("cn-north-1")


def test_the_spark_engine_from_a_config_file(tmp_path):
    config = tmp_path / "spark.toml"
    config.write_text('engine = "spark"\nspark_remote = "sc://spark.internal:15002"\n')
    settings = Settings.from_toml(config)
    assert settings.engine == "spark" and settings.engine_options == {"remote": "sc://spark.internal:15002"}
    assert Settings().engine_options == {}


def test_serve_without_pyspark_is_one_setup_line(tmp_path):
    """The spark engine on a machine without pyspark: one line saying what to install, exit 1, no traceback."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['pyspark'] = None; from opencleanrooms.cli import main; "
            f"sys.exit(main(['serve', '--data-dir', {str(tmp_path)!r}, '--port', '0', '--engine', 'spark', "
            "'--spark-remote', 'sc://127.0.0.1:15002']))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result
    assert result.stderr.strip().splitlines() == [
        "opencleanrooms: the spark engine needs pyspark: pip install 'opencleanrooms[spark]'"], result.stderr
