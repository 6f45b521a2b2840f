"""Pipeline ``features``: join one day's events with the same day's labels, one row per customer.

The pipeline's ``join`` input pairs ``/pfs/events/<day>.csv`` with ``/pfs/labels/<day>.csv``
(join_on the day), so each datum is one cohort day and a new day is one new datum. Within the
datum the join is per customer: event counts by type, spend and distinct active hours from the
events, left-joined onto the labels (a labelled customer without events gets zeros; events of
customers without a label are dropped and counted in the log). Writes ``<output>/<day>.csv``.

``python3 -m example_pipelines.churn.features --events /pfs/events --labels /pfs/labels --output /pfs/out``
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import pandas as pd

from example_pipelines.churn import (
    EVENT_COLUMNS,
    EVENT_TYPES,
    FEATURE_COLUMNS,
    KEY,
    LABEL,
    LABEL_COLUMNS,
)

log = logging.getLogger("example_pipelines.churn.features")

COHORT = "cohort"
OUTPUT_COLUMNS = (KEY, COHORT, *FEATURE_COLUMNS, LABEL)


class FeaturesError(ValueError):
    """An input file cannot be used (the message names the file and the problem)."""


def _read(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, dtype={KEY: str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise FeaturesError(f"{path}: not a readable CSV ({exc})") from exc
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise FeaturesError(f"{path}: missing column(s) {missing}; expected {list(columns)}")
    return frame


def read_events(path: Path) -> pd.DataFrame:
    events = _read(path, EVENT_COLUMNS)
    unknown = sorted(set(events["event"]) - set(EVENT_TYPES))
    if unknown:
        raise FeaturesError(f"{path}: unknown event type(s) {unknown}; expected {list(EVENT_TYPES)}")
    events["ts"] = pd.to_datetime(events["ts"], utc=True, errors="coerce")
    bad = events["ts"].isna()
    if bad.any():
        raise FeaturesError(f"{path}: unparseable ts on line(s) {list(events.index[bad][:5] + 2)}")
    events["amount"] = pd.to_numeric(events["amount"], errors="coerce").fillna(0.0)
    return events


def read_labels(path: Path) -> pd.DataFrame:
    labels = _read(path, LABEL_COLUMNS)
    duplicated = labels[KEY].duplicated()
    if duplicated.any():
        raise FeaturesError(f"{path}: {KEY} {labels[KEY][duplicated].iloc[0]!r} is labelled more than once")
    if not labels[LABEL].isin([0, 1]).all():
        raise FeaturesError(f"{path}: column {LABEL!r} must be 0 or 1")
    return labels[list(LABEL_COLUMNS)]


def customer_features(events: pd.DataFrame, labels: pd.DataFrame, cohort: str) -> pd.DataFrame:
    """One row per labelled customer: the features of ``FEATURE_COLUMNS`` and the label."""
    counts = pd.crosstab(events[KEY], events["event"]).reindex(columns=list(EVENT_TYPES), fill_value=0)
    counts.columns = [f"n_{event}" for event in EVENT_TYPES]
    per_customer = events.groupby(KEY).agg(
        n_events=("event", "size"),
        spend=("amount", "sum"),
        active_hours=("ts", lambda ts: ts.dt.floor("h").nunique()),
    )
    aggregates = per_customer.join(counts)
    joined = labels.merge(aggregates, how="left", left_on=KEY, right_index=True)
    joined[list(FEATURE_COLUMNS)] = joined[list(FEATURE_COLUMNS)].fillna(0)
    int_columns = [c for c in FEATURE_COLUMNS if c != "spend"]
    joined[int_columns] = joined[int_columns].astype("int64")
    joined["spend"] = joined["spend"].round(2)
    joined[COHORT] = cohort
    return joined[list(OUTPUT_COLUMNS)].sort_values(KEY, ignore_index=True)


def build(events_dir: Path, labels_dir: Path, output_dir: Path) -> list[Path]:
    """Features for every day present in both folders; returns the files written."""
    events_files = {p.name: p for p in sorted(events_dir.rglob("*.csv"))}
    labels_files = {p.name: p for p in sorted(labels_dir.rglob("*.csv"))}
    days = sorted(set(events_files) & set(labels_files))
    if not days:
        raise FeaturesError(
            f"no day has both an events file in {events_dir} ({sorted(events_files)}) "
            f"and a labels file in {labels_dir} ({sorted(labels_files)})"
        )
    output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in days:
        events, labels = read_events(events_files[name]), read_labels(labels_files[name])
        unlabelled = events.loc[~events[KEY].isin(labels[KEY]), KEY].nunique()
        table = customer_features(events, labels, cohort=Path(name).stem)
        out = output_dir / name
        table.to_csv(out, index=False)
        written.append(out)
        log.info(
            "%s: %d events, %d labelled customers (churn rate %.3f), %d customers without a label dropped",
            name,
            len(events),
            len(table),
            table[LABEL].mean(),
            unlabelled,
        )
    return written


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=Path, required=True, help="events folder, e.g. /pfs/events")
    parser.add_argument("--labels", type=Path, required=True, help="labels folder, e.g. /pfs/labels")
    parser.add_argument("--output", type=Path, required=True, help="output folder, e.g. /pfs/out")
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stdout)
    args = build_parser().parse_args(argv)
    try:
        build(args.events, args.labels, args.output)
    except FeaturesError as exc:
        log.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
