"""Running user code for a datum (pachd_lite.pps.runner, user_env, user_process) with real subprocesses."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest
from pachyderm_sdk.api import pps

from pachd_lite.pps.datums import Datum, DatumInput, datum_env
from pachd_lite.pps.runner import run_err_cmd, run_transform
from pachd_lite.pps.user_env import job_env, map_pfs_paths, user_process_env, write_dotenv
from pachd_lite.pps.user_process import UserProcess


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    (tmp_path / "pfs" / "raw").mkdir(parents=True)
    (tmp_path / "pfs" / "out").mkdir()
    (tmp_path / "pfs" / "raw" / "a.csv").write_text("1,2\n3,4\n")
    return tmp_path


def test_map_pfs_paths_only_maps_path_prefixes(tmp_path: Path):
    sb = str(tmp_path / "pfs")
    assert map_pfs_paths("/pfs", tmp_path) == sb
    assert map_pfs_paths("/pfs/raw/a.csv", tmp_path) == f"{sb}/raw/a.csv"
    assert map_pfs_paths("--in=/pfs/raw --out /pfs/out", tmp_path) == f"--in={sb}/raw --out {sb}/out"
    assert map_pfs_paths("cp /pfs/raw/* /pfs/out/", tmp_path) == f"cp {sb}/raw/* {sb}/out/"
    for untouched in ("/pfsx/a", "/data/pfs/a", "./pfs/a", "pfs/a", "/pfs_raw"):
        assert map_pfs_paths(untouched, tmp_path) == untouched


def test_cmd_stdin_env_and_working_dir_are_mapped(sandbox: Path):
    t = pps.Transform(
        cmd=["bash"],
        stdin=[
            "set -e",
            'wc -l < "$raw" > /pfs/out/count',
            'echo "$MYVAR" > /pfs/out/myvar',
            "pwd > /pfs/out/pwd",
            'echo "$PACH_DATUM_ID $PPS_PIPELINE_NAME" > /pfs/out/ids',
        ],
        working_dir="/pfs/raw",
    )
    datum = Datum(
        id="d" * 64, hash="h", inputs=(DatumInput("raw", "default", "raw", "master", "c1", "/a.csv", ""),)
    )
    env = {
        **job_env(
            pipeline_name="split",
            project_name="default",
            job_id="j1",
            output_commit_id="j1",
            spec_commit_id="s1",
            transform_env={"MYVAR": "/pfs/raw/a.csv"},
        ),
        **datum_env(datum),
    }
    lines: list[str] = []
    r = run_transform(t, sandbox, env, on_log=lines.append)
    assert r.success, r
    out = sandbox / "pfs" / "out"
    assert (out / "count").read_text().strip() == "2"
    assert (out / "myvar").read_text().strip() == str(sandbox / "pfs" / "raw" / "a.csv")
    assert (out / "pwd").read_text().strip() == str(sandbox / "pfs" / "raw")
    assert (out / "ids").read_text().strip() == f"{'d' * 64} split"


def test_no_shell_and_python_on_path_is_this_interpreter(sandbox: Path):
    t = pps.Transform(cmd=["python3", "-c", "import sys; print(sys.prefix); print('$HOME')"])
    lines: list[str] = []
    r = run_transform(t, sandbox, {}, on_log=lines.append)
    assert r.success
    assert lines == [sys.prefix, "$HOME"]  # no shell expansion; the venv's python3 came first
    assert user_process_env({}, sandbox)["PATH"].split(os.pathsep)[0] == os.path.dirname(sys.executable)


def test_logs_stream_while_running_and_tail_is_bounded(sandbox: Path):
    code = "import time\nfor i in range(100): print(f'line {i}')\nprint('done', flush=True)\ntime.sleep(1.5)"
    t = pps.Transform(cmd=["python3", "-c", code])
    seen_at: list[float] = []
    started = time.monotonic()

    def on_log(line: str) -> None:
        if line == "done":
            seen_at.append(time.monotonic() - started)

    r = run_transform(t, sandbox, {}, on_log=on_log, tail_lines=5)
    assert r.success and r.exit_code == 0
    assert seen_at and seen_at[0] < r.duration_s - 0.5  # arrived before the process ended
    assert r.log_tail == ["line 96", "line 97", "line 98", "line 99", "done"]


def test_exit_codes_and_accept_return_code(sandbox: Path):
    fail = run_transform(pps.Transform(cmd=["bash", "-c", "echo boom >&2; exit 3"]), sandbox, {})
    assert not fail.success and fail.exit_code == 3
    assert "exit" in fail.error and fail.log_tail == ["boom"]
    assert "boom" in fail.failure_reason()
    ok = run_transform(pps.Transform(cmd=["bash", "-c", "exit 3"], accept_return_code=[3]), sandbox, {})
    assert ok.success and ok.exit_code == 3


def test_missing_command_is_a_failed_run_not_an_exception(sandbox: Path):
    r = run_transform(pps.Transform(cmd=["no-such-command-xyz"]), sandbox, {})
    assert not r.success and r.exit_code is None and "no-such-command-xyz" in r.error


def test_timeout_kills_the_process_group(sandbox: Path):
    pidfile = sandbox / "child.pid"
    t = pps.Transform(cmd=["bash", "-c", f"sleep 30 & echo $! > {pidfile}; wait"])
    r = run_transform(t, sandbox, {}, timeout=0.5)
    assert r.timed_out and not r.success and "timed out" in r.error
    assert r.duration_s < 10
    child = int(pidfile.read_text())
    _assert_gone(child)


def test_cancel_kills(sandbox: Path):
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    r = run_transform(pps.Transform(cmd=["sleep", "30"]), sandbox, {}, cancel=cancel)
    assert r.cancelled and not r.success and r.duration_s < 10


def test_err_cmd(sandbox: Path):
    t = pps.Transform(cmd=["false"], err_cmd=["bash"], err_stdin=["echo recovered > /pfs/out/r"])
    r = run_err_cmd(t, sandbox, {})
    assert r is not None and r.success
    assert (sandbox / "pfs" / "out" / "r").read_text().strip() == "recovered"
    assert run_err_cmd(pps.Transform(cmd=["false"]), sandbox, {}) is None


def test_dotenv_shim_repoints_pachyderm_sdk(sandbox: Path):
    write_dotenv(sandbox, {"raw": "/pfs/raw/a.csv", "QUOTED": 'say "hi" \\ there'})
    code = (
        "from pachyderm_sdk.api.worker import extension\n"
        "from dotenv import load_dotenv\n"
        "import os\n"
        "print(extension.DOTENV_PATH_WORKER)\n"
        "load_dotenv(extension.DOTENV_PATH_WORKER, override=True)\n"
        "print(os.environ['raw']); print(os.environ['QUOTED'])\n"
    )
    lines: list[str] = []
    p = UserProcess(
        ["python3", "-c", code], sandbox=sandbox, env={}, on_log=lines.append, python_dotenv_shim=True
    )
    assert p.wait(60) == 0, lines
    assert lines == [
        str(sandbox / "pfs" / ".env"),
        str(sandbox / "pfs" / "raw" / "a.csv"),
        'say "hi" \\ there',
    ]


def _assert_gone(pid: int) -> None:
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        # A zombie still answers kill(0); check its state.
        try:
            if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                return
        except FileNotFoundError:
            return
        time.sleep(0.1)
    raise AssertionError(f"process {pid} still running")


def test_run_transform_passes_on_only_the_user_codes_lines(tmp_path: Path):
    """Only the user code's lines reach on_log and log_tail; pachd-lite's words are in the error."""
    (tmp_path / "pfs").mkdir()
    got: list[str] = []
    timed = run_transform(
        pps.Transform(cmd=["sh", "-c", "echo one; sleep 30"]), tmp_path, {}, on_log=got.append, timeout=0.5
    )
    assert timed.timed_out and "timed out" in timed.error and got == ["one"] and timed.log_tail == ["one"]
    assert timed.failure_reason() == f"{timed.error}\none"  # the error once, then what the code printed
    cancel = threading.Event()
    cancel.set()
    cancelled = run_transform(
        pps.Transform(cmd=["sh", "-c", "sleep 30"]), tmp_path, {}, on_log=got.append, cancel=cancel
    )
    assert cancelled.cancelled and got == ["one"]
    missing = run_transform(pps.Transform(cmd=["no-such-command-xyz"]), tmp_path, {}, on_log=got.append)
    assert "could not start user code" in missing.error and got == ["one"]
    assert missing.failure_reason() == missing.error
