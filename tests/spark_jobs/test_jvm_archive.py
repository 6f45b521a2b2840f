"""The Spark driver JVM maps this installation's class-data-sharing archive (spark_jobs.jvm_archive)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from spark_jobs import jvm_archive

pytestmark = pytest.mark.spark

# Runs in a fresh interpreter: the test session's shared JVM is already running.
MAPS_ARCHIVE = """
import sys
from spark_jobs.spark_session import build_session
spark = build_session("cds-check", master="local[1]", driver_memory="512m")
pid = spark.sparkContext._gateway.proc.pid
maps = open(f"/proc/{pid}/maps").read()
spark.stop()
print("MAPPED" if sys.argv[1] in maps else "NOT MAPPED")
"""


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The archive `make install` built, or one built now (the same code path)."""
    installed = jvm_archive.archive_path()
    if installed is not None and installed.is_file():
        return installed
    return jvm_archive.build(tmp_path_factory.mktemp("cds") / "spark.jsa")


def test_java_options_follow_the_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "spark.jsa"
    monkeypatch.setenv(jvm_archive.ENV, str(path))
    assert jvm_archive.java_options() == ""
    path.write_bytes(b"x")
    assert jvm_archive.java_options() == f"-XX:SharedArchiveFile={path}"
    monkeypatch.setenv(jvm_archive.ENV, "off")
    assert jvm_archive.java_options() == ""


def test_the_user_cache_serves_when_the_environment_is_not_writable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    read_only_prefix = tmp_path / "prefix"
    read_only_prefix.mkdir()
    read_only_prefix.chmod(0o555)
    monkeypatch.delenv(jvm_archive.ENV, raising=False)
    monkeypatch.setattr(jvm_archive.sys, "prefix", str(read_only_prefix))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    target = jvm_archive.build_target()
    if os.geteuid() == 0:  # root writes anywhere: the environment's folder still comes first
        assert target is not None and target.is_relative_to(read_only_prefix)
        target = jvm_archive.candidate_paths()[1]
    else:
        assert target is not None and target.is_relative_to(tmp_path / "cache")
    assert jvm_archive.archive_path() is None
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"x")
    assert jvm_archive.archive_path() == target
    assert jvm_archive.java_options() == f"-XX:SharedArchiveFile={target}"


def test_archive_key_changes_with_the_jdk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = jvm_archive.archive_key()
    assert key is not None
    fake_home = tmp_path / "jdk"
    (fake_home / "bin").mkdir(parents=True)
    (fake_home / "bin" / "java").write_text("#!/bin/sh\n")
    monkeypatch.setenv("JAVA_HOME", str(fake_home))
    assert jvm_archive.archive_key() not in (None, key)


def test_the_driver_jvm_maps_the_archive(archive: Path) -> None:
    env = {**os.environ, jvm_archive.ENV: str(archive)}
    done = subprocess.run(
        [sys.executable, "-c", MAPS_ARCHIVE, str(archive)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "MAPPED", done.stdout[-2000:]
