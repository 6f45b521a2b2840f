"""PachydermPutFilesOperator checks files before committing: ``include`` filter, ``expected_columns``."""

from __future__ import annotations

import pendulum
import pytest
from airflow.sdk import DAG
from pachyderm_sdk.api import pfs

from pachflow.exceptions import InvalidInputFile
from pachflow.input_checks import expected_columns_check, select, validate
from pachflow.operators.files import PachydermPutFilesOperator
from pachflow.upload import plan_upload
from tests.fixtures.pachd import unique_name

START = pendulum.datetime(2026, 1, 1, tz="UTC")
COLUMNS = ["step", "type", "amount"]


def _dag(repo: str, source: str) -> DAG:
    with DAG(unique_name("edge"), schedule=None, start_date=START, catchup=False) as dag:
        PachydermPutFilesOperator(
            task_id="push", source=source, repo=repo, include="*.csv", expected_columns=COLUMNS, retries=0
        )
    return dag


def _head(client, repo: str) -> str | None:
    branch = pfs.Branch(
        repo=pfs.Repo(name=repo, type="user", project=pfs.Project(name="default")), name="master"
    )
    if not client.pfs.branch_exists(branch):
        return None
    return client.pfs.inspect_branch(branch=branch).head.id


def test_bad_header_refused_before_commit_and_non_csv_left_out(
    run_dag, pachyderm_connection, pachd_server, tmp_path, capsys
):
    from airflow.utils.state import TaskInstanceState

    client = pachd_server.client()
    repo = unique_name("raw")
    (tmp_path / "day1.csv").write_text("step,type,amount\n1,PAYMENT,10.5\n")
    (tmp_path / "params.json").write_text('{"rows": 1}')
    capsys.readouterr()
    dr = run_dag(_dag(repo, str(tmp_path)))
    log = "".join(capsys.readouterr())
    assert dr.get_task_instance("push").state == TaskInstanceState.SUCCESS
    head = _head(client, repo)
    files = [f.file.path for f in client.pfs.list_file(file=pfs.File.from_uri(f"{repo}@{head}:/"))]
    assert files == ["/day1.csv"]  # params.json left out by include="*.csv"
    assert "params.json" in log and "Left out 1 file(s)" in log

    (tmp_path / "junk.csv").write_text("hello,world\n1,2\n")
    (tmp_path / "day2.csv").write_text("step,type,amount\n2,CASH_OUT,3.0\n")
    dr = run_dag(_dag(repo, str(tmp_path)))
    log = "".join(capsys.readouterr())
    assert dr.get_task_instance("push").state == TaskInstanceState.FAILED
    assert _head(client, repo) == head  # nothing committed, not even the good day2.csv
    assert "junk.csv" in log and "lacks column(s) step, type, amount" in log
    assert "nothing was committed" in log


def test_checks_name_the_file_and_reason(tmp_path):
    (tmp_path / "a.csv").write_text("step,amount\n")
    (tmp_path / "b.csv").write_bytes(b"\x00\x01\x02binary")
    (tmp_path / "c.txt").write_text("x")
    items, left_out = select(plan_upload(str(tmp_path)), "*.csv")
    assert [i.path for i in left_out] == ["/c.txt"]
    with pytest.raises(InvalidInputFile) as err:
        validate(items, [expected_columns_check(COLUMNS)], where="default/raw@master")
    text = str(err.value)
    assert "refused 2 of 2" in text and "a.csv" in text and "lacks column(s) type" in text
    assert "b.csv" in text and "binary data" in text
