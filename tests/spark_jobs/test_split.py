from __future__ import annotations

import csv
import os
from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from spark_jobs.schema import ARROW_SCHEMA, COLUMNS
from spark_jobs.split import (
    SplitConfig,
    UnusableFileError,
    bucket_of,
    main,
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
    15: ("", "blank line"),
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
