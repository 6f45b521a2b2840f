from __future__ import annotations

import csv
import os
import threading
import time
from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from spark_jobs import split
from spark_jobs.schema import ARROW_SCHEMA, COLUMNS
from spark_jobs.split import (
    SplitConfig,
    UnusableFileError,
    bucket_of,
    main,
    ordered_map,
    output_stem,
    split_file,
    split_input,
)

MASK = (1 << 64) - 1


def reference_bucket(name: str, buckets: int) -> int:
    """splitmix64 of the id's number, written independently with Python ints."""
    x = (int(name[1:]) + 0x9E3779B97F4A7C15) & MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK
    return (x ^ (x >> 31)) % buckets


def read_rows(out: Path) -> list[tuple]:
    rows = []
    for f in sorted(out.glob("bucket-*/*.parquet")):
        t = pq.read_table(f)
        assert t.schema.names == list(COLUMNS)
        rows += list(zip(*(t.column(c).to_pylist() for c in COLUMNS), strict=True))
    return rows


BAD_LINES = {
    5: ("1,PAYMENT,100", "3 fields instead of 11"),
    7: ("1,PAYMENT,abc,C1,10.0,0.0,M2,0.0,0.0,0,0", "amount is not a number: 'abc'"),
    9: ("1,WIRE,5.0,C1,10.0,5.0,C2,0.0,5.0,0,0", "unknown transaction type 'WIRE'"),
    11: ("1,PAYMENT,5.0,X123,10.0,5.0,M2,0.0,0.0,0,0", "nameOrig must look like C<digits>: 'X123'"),
    13: ("1,TRANSFER,5.0,C1,10.0,5.0,C2,0.0,5.0,2,0", "isFraud must be 0 or 1, got 2"),
    15: ("", "empty row (every field empty)"),
    17: ("1,CASH_OUT,-5.0,C1,10.0,5.0,C2,0.0,5.0,0,0", "amount is negative: -5.0"),
    19: ("1,CASH_OUT,5.0,C1,10.0,5.0,,0.0,5.0,0,0", "empty value for nameDest"),
    400: ("1,CASH_OUT,5.0,C1,10.0,5.0,C2,0.0,5.0,0,0,extra", "12 fields instead of 11"),
}


@pytest.fixture
def dirty_csv(raw_dir: Path, tmp_path: Path) -> tuple[Path, list[str]]:
    """A generated file with bad rows at known line numbers (line 1 is the header)."""
    good = (raw_dir / "paysim-day-01.csv").read_text().splitlines()
    lines, source = [good[0]], iter(good[1:])
    valid = []
    for line_no in range(2, 600):
        if line_no in BAD_LINES:
            lines.append(BAD_LINES[line_no][0])
        else:
            lines.append(next(source))
            valid.append(lines[-1])
    path = tmp_path / "raw_data" / "dirty.csv"
    path.parent.mkdir()
    path.write_text("\n".join(lines) + "\n")
    return path, valid


def test_rejects_have_line_numbers_and_reasons_across_blocks(
    dirty_csv: tuple[Path, list[str]], tmp_path: Path
) -> None:
    path, valid = dirty_csv
    out = tmp_path / "out"
    # tiny blocks: rows and rejects span many reader blocks
    result = split_file(path, out, "dirty", SplitConfig(buckets=4, block_size=2048))
    assert result.rejected == len(BAD_LINES)
    assert result.valid == len(valid) == 598 - len(BAD_LINES)
    with open(out / "rejects" / "dirty.csv", newline="") as f:
        rejects = list(csv.DictReader(f))
    assert [(int(r["line"]), r["reason"]) for r in rejects] == [
        (n, reason) for n, (_, reason) in BAD_LINES.items()
    ]
    assert rejects[1]["row"] == BAD_LINES[7][0]
    expected = pacsv.read_csv(
        _as_file(tmp_path, valid),
        convert_options=pacsv.ConvertOptions(column_types=ARROW_SCHEMA),
    )
    assert sorted(read_rows(out)) == sorted(
        zip(*(expected.column(c).to_pylist() for c in COLUMNS), strict=True)
    )


def _as_file(tmp_path: Path, lines: list[str]) -> str:
    path = tmp_path / "expected.csv"
    path.write_text("\n".join([",".join(COLUMNS), *lines]) + "\n")
    return str(path)


def test_buckets_are_stable_hashes_of_name_orig(split_dir: Path, raw_dir: Path) -> None:
    import pyarrow as pa

    assert bucket_of(pa.array(["C0", "C1", "C1231006815"]), 16).tolist() == [
        reference_bucket(n, 16) for n in ("C0", "C1", "C1231006815")
    ]
    days = {}
    for f in split_dir.glob("bucket-*/*.parquet"):
        bucket = int(f.parent.name.removeprefix("bucket-"))
        names = set(pq.read_table(f, columns=["nameOrig"]).column(0).to_pylist())
        assert {reference_bucket(n, 4) for n in names} == {bucket}
        days.setdefault(f.stem, set()).update(names)
    assert set(days) == {"paysim-day-01", "paysim-day-02"}
    assert len(days["paysim-day-01"] & days["paysim-day-02"]) > 100  # repeat customers, same bucket
    # every row of every raw file is in exactly one bucket file
    total = sum(1 for f in raw_dir.iterdir() for _ in open(f)) - 2
    assert sum(pq.read_metadata(f).num_rows for f in split_dir.glob("bucket-*/*.parquet")) == total


def test_each_input_file_writes_only_its_own_paths(split_dir: Path) -> None:
    stems = {p.stem for p in split_dir.glob("bucket-*/*.parquet")}
    assert stems == {"paysim-day-01", "paysim-day-02"}
    assert not list(split_dir.glob("**/.*"))  # no temp files left behind
    assert output_stem(Path("2024/05/day-01.csv.gz")) == "2024__05__day-01"


def test_keep_types_filters_without_rejecting(raw_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    (result,) = split_input(
        raw_dir / "paysim-day-01.csv", out, SplitConfig(buckets=2, keep_types=frozenset({"TRANSFER"}))
    )
    rows = read_rows(out)
    assert {r[1] for r in rows} == {"TRANSFER"}
    assert result.filtered + result.valid == result.rows and result.rejected == 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "not a CSV text file"),
        (b"a,b,c\n1,2,3\n", "not a PaySim header: missing column(s) step, type"),
        (
            (",".join(COLUMNS) + "\n1,WIRE,5.0,C1,1.0,0.0,C2,0.0,0.0,0,0\n").encode(),
            "no valid row (1 rows rejected)",
        ),
    ],
)
def test_unusable_file_fails_naming_the_file(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(UnusableFileError, match="bad.csv") as info:
        split_file(path, tmp_path / "out", "bad", SplitConfig(buckets=2))
    assert message in str(info.value)
    assert not list((tmp_path / "out").glob("bucket-*/*"))


def test_cli_fails_clearly_but_splits_the_usable_files(
    raw_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    inp = tmp_path / "raw_data"
    inp.mkdir()
    (inp / "good.csv").write_bytes((raw_dir / "paysim-day-01.csv").read_bytes())
    (inp / "notes.txt").write_text("hello\n")
    monkeypatch.setenv("SPLIT_BUCKETS", "3")
    assert main(["--input", str(inp), "--output", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "notes.txt" in err and "not a PaySim header" in err
    assert sorted(p.parent.name for p in (tmp_path / "out").glob("bucket-*/good.parquet")) == [
        "bucket-00",
        "bucket-01",
        "bucket-02",
    ]


def test_cli_rejects_bad_configuration(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="unknown transaction type"):
        main(["--input", str(tmp_path), "--output", str(tmp_path / "o"), "--keep-types", "WIRE"])
    with pytest.raises(SystemExit, match="SPLIT_BUCKETS must be an integer"):
        os.environ["SPLIT_BUCKETS"] = "many"
        try:
            main(["--input", str(tmp_path), "--output", str(tmp_path / "o")])
        finally:
            del os.environ["SPLIT_BUCKETS"]


def _uneven_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every other block slow, so that blocks finish out of order in the worker threads."""
    process, calls, lock = split._process_block, [0], threading.Lock()

    def uneven(*args: object) -> split._Block:
        with lock:
            calls[0] += 1
            slow = calls[0] % 2 == 1
        if slow:
            time.sleep(0.01)
        return process(*args)

    monkeypatch.setattr(split, "_process_block", uneven)


def _sequential(monkeypatch: pytest.MonkeyPatch) -> None:
    """One block at a time: read, process, write, as a plain loop does."""
    monkeypatch.setattr(split, "WORKERS", 1)
    monkeypatch.setattr(split, "BLOCKS_IN_FLIGHT", 1)


def test_row_order_and_reject_lines_survive_parallel_blocks(
    dirty_csv: tuple[Path, list[str]], raw_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = (raw_dir / "paysim-day-01.csv").read_text().splitlines()[1:]
    dirty, dirty_valid = dirty_csv[0].read_text().splitlines()[1:], dirty_csv[1]
    path = tmp_path / "big.csv"
    path.write_text("\n".join([",".join(COLUMNS), *good, *dirty, *good, *dirty]) + "\n")
    # ~100 blocks of 16 KiB and several row groups per bucket file
    config = SplitConfig(buckets=3, block_size=16 << 10, row_group_rows=1_000)
    _uneven_workers(monkeypatch)
    split_file(path, tmp_path / "threaded", "big", config)

    valid = pacsv.read_csv(
        _as_file(tmp_path, [*good, *dirty_valid, *good, *dirty_valid]),
        convert_options=pacsv.ConvertOptions(column_types=ARROW_SCHEMA),
    )
    valid_rows = list(zip(*(valid.column(c).to_pylist() for c in COLUMNS), strict=True))
    for bucket in range(3):
        written = pq.read_table(tmp_path / "threaded" / f"bucket-{bucket:02d}" / "big.parquet")
        assert (
            pq.read_metadata(tmp_path / "threaded" / f"bucket-{bucket:02d}" / "big.parquet").num_row_groups
            > 2
        )
        rows = list(zip(*(written.column(c).to_pylist() for c in COLUMNS), strict=True))
        assert rows == [r for r in valid_rows if reference_bucket(r[3], 3) == bucket]  # file order kept
    with open(tmp_path / "threaded" / "rejects" / "big.csv", newline="") as f:
        rejects = [(int(r["line"]), r["reason"]) for r in csv.DictReader(f)]
    second_copy = 1 + 2 * len(good) + len(dirty)  # lines before the second dirty part
    assert rejects == [(n + len(good), reason) for n, (_, reason) in BAD_LINES.items()] + [
        (n + second_copy - 1, reason) for n, (_, reason) in BAD_LINES.items()
    ]

    _sequential(monkeypatch)
    split_file(path, tmp_path / "sequential", "big", config)
    files = sorted(f.relative_to(tmp_path / "sequential") for f in (tmp_path / "sequential").rglob("*.*"))
    assert len(files) == 4  # 3 buckets + rejects
    for name in files:
        assert (tmp_path / "threaded" / name).read_bytes() == (tmp_path / "sequential" / name).read_bytes()


def test_unreadable_block_fails_like_a_sequential_loop(
    raw_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = (raw_dir / "paysim-day-01.csv").read_text().splitlines()
    path = tmp_path / "long.csv"
    path.write_text("\n".join([*lines, "1,PAYMENT," + "9" * 40_000, *lines[1:50]]) + "\n")
    config = SplitConfig(buckets=2, block_size=16 << 10, row_group_rows=500)
    messages = []
    for setup in (_uneven_workers, _sequential):
        setup(monkeypatch)
        with pytest.raises(UnusableFileError, match="long.csv: unreadable after data row") as info:
            split_file(path, tmp_path / "out", "long", config)
        messages.append(str(info.value))
        assert not list((tmp_path / "out").rglob("*.*"))  # every bucket writer aborted
    assert messages[0] == messages[1]
    assert "line is longer than the reader's block" in messages[0]


def test_ordered_map_keeps_order_bounds_work_and_raises_in_place() -> None:
    started: list[int] = []

    def slow_square(i: int) -> int:
        started.append(i)
        time.sleep(0.005 * (i % 3))
        if i == 7:
            raise ValueError("item 7")
        return i * i

    results = ordered_map(slow_square, range(7), workers=2, in_flight=3)
    assert next(results) == 0
    assert len(started) <= 3  # no more than in_flight items taken before the first is consumed
    assert list(results) == [i * i for i in range(1, 7)]

    got = []
    with pytest.raises(ValueError, match="item 7"):
        for value in ordered_map(slow_square, range(20), workers=2, in_flight=3):
            got.append(value)
    assert got == [i * i for i in range(7)]

    def failing_source():
        yield from range(5)
        raise OSError("source broke")

    got = []
    with pytest.raises(OSError, match="source broke"):
        for value in ordered_map(slow_square, failing_source(), workers=2, in_flight=4):
            got.append(value)
    assert got == [i * i for i in range(5)]  # everything read before the failure is delivered first


def test_in_a_job_files_are_named_repo_at_commit_once_and_summaries_written(
    dirty_csv: tuple[Path, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    import json

    path, valid = dirty_csv
    inp = path.parent  # .../raw_data, as /pfs/raw_data in a job
    (inp / "junk.csv").write_text("hello,world\n1,2\n")
    monkeypatch.setenv("raw_data_COMMIT", "c0ffee")
    assert main(["--input", str(inp), "--output", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.count("raw_data@c0ffee:/junk.csv") == 1 and str(inp) not in err
    assert "`pachflow rm raw_data@master:/junk.csv`" in err
    summary = json.loads((tmp_path / "out" / "rejects" / "dirty.json").read_text())
    assert summary["file"] == "raw_data@c0ffee:/dirty.csv"
    assert summary["rejected"] == len(BAD_LINES) and summary["valid"] == len(valid)
    assert summary["rejects_file"] == "/rejects/dirty.csv"
    assert summary["first"][0] == {"line": 5, "reason": "3 fields instead of 11"}
    assert summary["reasons"]["empty row (every field empty)"] == 1
    assert sum(summary["reasons"].values()) == len(BAD_LINES)
