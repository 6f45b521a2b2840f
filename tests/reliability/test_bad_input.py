"""Bad-input corpus for the split job: every case keeps its valid rows and lists the rejected
ones with line and reason, or fails with a message naming the file and the problem.

Run directly on temp dirs (every case), in a subprocess for the 1 GB single line (bounded
memory, measured), and through a real pachd-lite ``split_data`` pipeline for the failing cases
(the job fails with that message; earlier finished commits stay byte-identical).
The corpus is generated here (small bytes); nothing is kept in tests/data.
"""

from __future__ import annotations

import csv
import gzip
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from spark_jobs.schema import COLUMNS
from spark_jobs.split import SplitConfig, UnusableFileError, split_file

ROOT = Path(__file__).resolve().parents[2]
HEADER = ",".join(COLUMNS)
GiB = 1 << 30


def row(i: int, *, type_: str = "PAYMENT", amount: str | None = None, dest: str | None = None) -> str:
    """A valid PaySim row for customer ``C<1000+i>`` (fields overridable to make it bad)."""
    amount = amount if amount is not None else f"{100 + i}.5"
    dest = dest if dest is not None else f"M{5000 + i}"
    return f"{1 + i % 7},{type_},{amount},C{1000 + i},1000.0,899.5,{dest},0.0,0.0,0,0"


def lines(*rows: str, end: str = "\n") -> bytes:
    return (end.join(rows) + end).encode()


GOOD = [row(i) for i in range(20)]


@dataclass
class Kept:
    """Valid rows go to buckets; ``rejects`` are (line, reason substring), in line order."""

    valid: list[str]
    rejects: list[tuple[int, str]] = field(default_factory=list)


@dataclass
class Fails:
    """The file is unusable: UnusableFileError naming the file and containing ``problem``."""

    problem: str


# name -> (file name, content, expected outcome). Line 1 is the header.
CORPUS: dict[str, tuple[str, bytes, Kept | Fails]] = {
    "wrong_header": ("wrong.csv", lines("a,b,c", *GOOD), Fails("line 1 is not a PaySim header")),
    "missing_header": ("noheader.csv", lines(*GOOD), Fails("line 1 is not a PaySim header")),
    "header_missing_column": (
        "tencols.csv",
        lines(HEADER.removesuffix(",isFlaggedFraud"), *(r.removesuffix(",0") for r in GOOD)),
        Fails("missing column(s) isFlaggedFraud"),
    ),
    "extra_column": ("extra.csv", lines(HEADER + ",note", *(r + ",hello" for r in GOOD)), Kept(GOOD)),
    "extra_and_missing_fields": (
        "fields.csv",
        lines(HEADER, *GOOD[:5], GOOD[5] + ",x", *GOOD[6:10], GOOD[10].rsplit(",", 1)[0], *GOOD[11:]),
        Kept(
            GOOD[:5] + GOOD[6:10] + GOOD[11:],
            [(7, "12 fields instead of 11"), (12, "10 fields instead of 11")],
        ),
    ),
    "non_numeric_amount": (
        "nonnum.csv",
        lines(HEADER, *GOOD[:3], row(99, amount="12abc"), *GOOD[3:]),
        Kept(GOOD, [(5, "amount is not a number: '12abc'")]),
    ),
    "negative_amount": (
        "negative.csv",
        lines(HEADER, row(99, amount="-5.0"), *GOOD),
        Kept(GOOD, [(2, "amount is negative: -5.0")]),
    ),
    "nan_and_inf_amount": (
        "nan.csv",
        lines(HEADER, *GOOD[:10], row(98, amount="NaN"), *GOOD[10:], row(99, amount="inf")),
        Kept(GOOD, [(12, "amount is not finite: nan"), (23, "amount is not finite: inf")]),
    ),
    "unknown_type": (
        "wire.csv",
        lines(HEADER, *GOOD[:2], row(99, type_="WIRE"), *GOOD[2:]),
        Kept(GOOD, [(4, "unknown transaction type 'WIRE'")]),
    ),
    "empty_file": ("empty.csv", b"", Fails("empty file")),
    "header_only": ("header.csv", lines(HEADER), Kept([])),  # a day without transactions: valid
    "crlf": ("crlf.csv", lines(HEADER, *GOOD, end="\r\n"), Kept(GOOD)),
    "bom_and_crlf": ("bom.csv", b"\xef\xbb\xbf" + lines(HEADER, *GOOD, end="\r\n"), Kept(GOOD)),
    "non_utf8_bytes": (
        "latin1.csv",
        lines(HEADER, *GOOD[:4]) + row(99, dest="M\xe9\xe9").encode("latin-1") + b"\n" + lines(*GOOD[4:]),
        Kept(GOOD, [(6, "nameDest is not valid UTF-8")]),
    ),
    "quoted_fields_with_commas": (
        "quoted.csv",
        lines(HEADER, *GOOD[:3], row(99, dest='"M1,234"'), *GOOD[3:], row(20, type_='"PAYMENT"')),
        Kept([*GOOD, row(20)], [(5, "nameDest must look like C<digits> or M<digits>: 'M1,234'")]),
    ),
    "truncated_last_line": (
        "truncated.csv",
        lines(HEADER, *GOOD) + row(99).encode()[:14],
        Kept(GOOD, [(22, "3 fields instead of 11")]),
    ),
    "binary_named_csv": (
        "image.csv",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4,
        Fails("not a CSV text file"),
    ),
    "gzip_named_csv": ("zipped.csv", gzip.compress(lines(HEADER, *GOOD)), Fails("gzip-compressed data")),
    "gzip_named_csv_gz": ("zipped.csv.gz", gzip.compress(lines(HEADER, *GOOD)), Kept(GOOD)),
    "line_longer_than_a_block": (
        "oneline.csv",
        lines(HEADER, ",".join(GOOD * 40_000)),  # ~5 MB without a line break: over the 4 MiB block
        Fails("a line is longer than the reader's block"),
    ),
}
FAILING = [name for name, (_, _, outcome) in CORPUS.items() if isinstance(outcome, Fails)]


def bucket_rows(out: Path, stem: str) -> list[str]:
    """Rows written to the buckets for ``stem``, back as CSV text (floats as written above)."""
    rows = []
    for f in sorted(out.glob(f"bucket-*/{stem}.parquet")):
        t = pq.read_table(f)
        for values in zip(*(t.column(c).to_pylist() for c in COLUMNS), strict=True):
            rows.append(",".join(str(v) for v in values))
    return rows


def read_rejects(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_corpus_is_big_enough():
    assert len(CORPUS) >= 15 and len(FAILING) >= 5


@pytest.mark.parametrize("case", list(CORPUS))
def test_split_keeps_valid_rows_and_lists_rejects_or_fails_naming_the_file(case: str, tmp_path: Path):
    name, content, expected = CORPUS[case]
    path = tmp_path / "raw_data" / name
    path.parent.mkdir()
    path.write_bytes(content)
    out = tmp_path / "out"
    stem = name.split(".")[0]
    if isinstance(expected, Fails):
        with pytest.raises(UnusableFileError) as info:
            split_file(path, out, stem, SplitConfig(buckets=3))
        assert str(path) in str(info.value) and expected.problem in str(info.value)
        assert not list(out.glob("**/*.parquet")) and not list(out.glob("rejects/*"))
        assert not list(out.glob("**/.*"))  # no temp files left
        return
    result = split_file(path, out, stem, SplitConfig(buckets=3))
    assert sorted(bucket_rows(out, stem)) == sorted(expected.valid)
    rejects = read_rejects(out / "rejects" / f"{stem}.csv")
    assert [int(r["line"]) for r in rejects] == [line for line, _ in expected.rejects]
    for got, (_, reason) in zip(rejects, expected.rejects, strict=True):
        assert reason in got["reason"], got
    # nothing lost: every data line is either in a bucket or in the rejects
    assert result.valid + result.rejected == result.rows == len(expected.valid) + len(expected.rejects)


# VmHWM (peak RSS of this address space), not ru_maxrss: on Linux ru_maxrss survives exec and
# would report the size of the (large) pytest process that forked the child.
_MEASURE = """
import re, sys
from spark_jobs.split import main
code = main(["--input", sys.argv[1], "--output", sys.argv[2]])
hwm = re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)
print("PEAK_RSS_KB", hwm, file=sys.stderr)
sys.exit(code)
"""


@pytest.mark.parametrize("with_header", [True, False], ids=["after-header", "no-header"])
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak RSS is read from /proc (Linux)")
def test_one_gigabyte_single_line_fails_in_bounded_memory(with_header: bool, tmp_path: Path):
    """A 1 GiB file without a line break: the job reads a block, fails naming the file, never loads it.

    The first 8 MiB are real PaySim fields joined by commas; the rest is a sparse hole (reads as
    NUL bytes, still no line break), so the file costs no disk and no time to create.
    """
    raw = tmp_path / "raw_data"
    raw.mkdir()
    path = raw / "huge.csv"
    with open(path, "wb") as f:
        if with_header:
            f.write((HEADER + "\n").encode())
        chunk = (",".join(GOOD) + ",").encode()
        f.write(chunk * ((8 << 20) // len(chunk)))
        f.truncate(GiB)
    assert path.stat().st_size == GiB
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(raw), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    assert f"split_data failed: {path}" in proc.stderr
    problem = (
        "a line is longer than the reader's block" if with_header else "no line break in its first 64 KiB"
    )
    assert problem in proc.stderr
    peak_mb = int(proc.stderr.rsplit("PEAK_RSS_KB", 1)[1].split()[0]) / 1024
    assert peak_mb < 400, f"split read too much of a 1 GiB line: peak RSS {peak_mb:.0f} MB"
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("**/*.parquet"))


# --- through a real pachd-lite split_data pipeline ----------------------------------------------


def _one_try_three_buckets(spec: dict) -> None:
    spec["transform"]["env"]["SPLIT_BUCKETS"] = "3"
    spec["datum_tries"] = 1  # one try is enough to see the message; retries are tested in pachd_lite


def _files(client, uri: str) -> dict[str, bytes]:
    from pachyderm_sdk.api import pfs

    return {
        info.file.path: client.pfs.pfs_file(pfs.File.from_uri(f"{uri}:{info.file.path}")).read()
        for info in client.pfs.walk_file(file=pfs.File.from_uri(f"{uri}:/"))
        if info.file_type == pfs.FileType.FILE
    }


def test_pipeline_job_fails_naming_file_and_problem_and_keeps_earlier_commits(pachd_server):
    from pachyderm_sdk.api import pfs, pps

    from tests.fixtures.pachd import unique_name
    from tests.reliability.conftest import spec_for

    client = pachd_server.client()
    project = unique_name("bad")
    client.pfs.create_project(project=pfs.Project(name=project))
    client.pfs.create_repo(repo=pfs.Repo.from_uri(f"{project}/raw_data"))
    client.pps.create_pipeline_v2(
        create_pipeline_request_json=spec_for("split_data", project, _one_try_three_buckets)
    )
    branch = pfs.Branch.from_uri(f"{project}/raw_data@master")

    def job_of(commit_id: str) -> pps.JobInfo:
        client.pfs.wait_commit_set(pfs.CommitSet(id=commit_id))
        job = pps.Job(
            pipeline=pps.Pipeline(name="split_data", project=pfs.Project(name=project)), id=commit_id
        )
        return client.pps.inspect_job(job=job, wait=True)

    # 1. a good file and two files with some bad rows: success, rejects listed
    partial = ("non_utf8_bytes", "truncated_last_line")
    with client.pfs.commit(branch=branch) as c1:
        c1.put_file_from_bytes("/good.csv", lines(HEADER, *GOOD))
        for case in partial:
            c1.put_file_from_bytes(f"/{CORPUS[case][0]}", CORPUS[case][1])
    first = job_of(c1.id)
    assert first.state == pps.JobState.JOB_SUCCESS, first.reason
    split_uri = f"{project}/split_data@{c1.id}"
    before = _files(client, split_uri)
    raw_before = _files(client, f"{project}/raw_data@{c1.id}")
    for case in partial:
        stem = CORPUS[case][0].split(".")[0]
        text = before[f"/rejects/{stem}.csv"].decode()
        line, reason = CORPUS[case][2].rejects[0]
        assert f"{line}," in text and reason in text
        summary = json.loads(before[f"/rejects/{stem}.json"])
        assert summary["file"] == f"raw_data@{c1.id}:/{CORPUS[case][0]}" and summary["rejected"] > 0
        assert summary["first"][0]["line"] == line and summary["rejects_file"] == f"/rejects/{stem}.csv"
    assert json.loads(before["/rejects/good.json"])["rejected"] == 0
    assert any(p.endswith("/good.parquet") for p in before)

    # 2. each unusable file in its own commit: the job fails, its reason names the file and problem
    previous = None
    for case in FAILING:
        name, content, expected = CORPUS[case]
        with client.pfs.commit(branch=branch) as c:
            if previous:
                c.delete_file(path=previous)
            c.put_file_from_bytes(f"/{name}", content)
        previous = f"/{name}"
        info = job_of(c.id)
        assert info.state == pps.JobState.JOB_FAILURE, (case, info.state, info.reason)
        assert name in info.reason and expected.problem in info.reason, (case, info.reason)
        # named as repo@commit:/path, once, with the command that removes it; no sandbox path
        assert info.reason.count(f"raw_data@{c.id}:/{name}") == 1, (case, info.reason)
        assert f"pachflow rm raw_data@master:/{name}" in info.reason and "/pfs/" not in info.reason, (
            info.reason
        )
        assert info.data_failed == 1, case

    # 3. nothing already committed changed
    assert _files(client, split_uri) == before
    assert _files(client, f"{project}/raw_data@{c1.id}") == raw_before
