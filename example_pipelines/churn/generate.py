"""Generate the churn example's data: one cohort of new customers per day.

``python -m example_pipelines.churn.generate --output DIR --days 2`` writes, for each day,
``DIR/events/<day>.csv`` (customer_id, ts, event, amount: logins, purchases, support tickets
during the cohort's first week) and ``DIR/labels/<day>.csv`` (customer_id, churned). Each
customer has a hidden engagement level that drives both the events and the churn label, so
the label is learnable from the events but not perfectly. Each day has its own random stream
(seeded by ``seed`` and the day), so asking for more days adds files and leaves the earlier
ones byte-identical: a push of the larger set only changes the new day.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import math
import random
from dataclasses import dataclass
from pathlib import Path

from example_pipelines.churn import EVENT_COLUMNS, KEY, LABEL, LABEL_COLUMNS

DEFAULT_START = dt.date(2026, 1, 1)


@dataclass(frozen=True)
class GenerateConfig:
    days: int = 2
    customers: int = 400
    seed: int = 7
    start: dt.date = DEFAULT_START


def _poisson(rng: random.Random, lam: float) -> int:
    """Knuth's method; the rates here are small (< 20)."""
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def cohort(day: dt.date, config: GenerateConfig) -> tuple[list[tuple], list[tuple]]:
    """(event rows, label rows) of one day's cohort, deterministic in ``config.seed`` and ``day``."""
    rng = random.Random(f"{config.seed}/{day.isoformat()}")
    start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    events: list[tuple] = []
    labels: list[tuple] = []
    for n in range(config.customers):
        customer = f"c{day:%Y%m%d}-{n:05d}"
        engagement = rng.gauss(0.0, 1.0)
        counts = {
            "login": _poisson(rng, math.exp(1.0 + 0.8 * engagement)),
            "purchase": _poisson(rng, math.exp(-0.6 + 0.6 * engagement)),
            "support_ticket": _poisson(rng, math.exp(-1.2 - 0.5 * engagement)),
        }
        for event, count in counts.items():
            for _ in range(count):
                ts = start + dt.timedelta(seconds=rng.randrange(7 * 24 * 3600))
                amount = round(rng.lognormvariate(3.0, 0.6), 2) if event == "purchase" else 0.0
                events.append((customer, ts.strftime("%Y-%m-%dT%H:%M:%SZ"), event, amount))
        risk = -0.7 - 2.0 * engagement + 0.5 * counts["support_ticket"] + rng.gauss(0.0, 0.3)
        labels.append((customer, int(rng.random() < _sigmoid(risk))))
    events.sort(key=lambda row: (row[1], row[0]))
    return events, labels


def _write(path: Path, header: tuple[str, ...], rows: list[tuple]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def generate(output: Path, config: GenerateConfig) -> list[str]:
    """Write ``events/<day>.csv`` and ``labels/<day>.csv`` for each day; return the day names."""
    names = []
    for i in range(config.days):
        day = config.start + dt.timedelta(days=i)
        events, labels = cohort(day, config)
        _write(output / "events" / f"{day.isoformat()}.csv", EVENT_COLUMNS, events)
        _write(output / "labels" / f"{day.isoformat()}.csv", LABEL_COLUMNS, labels)
        names.append(day.isoformat())
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, required=True, help="folder for events/ and labels/")
    parser.add_argument("--days", type=int, default=GenerateConfig.days)
    parser.add_argument("--customers", type=int, default=GenerateConfig.customers, help="per day")
    parser.add_argument("--seed", type=int, default=GenerateConfig.seed)
    parser.add_argument("--start", type=dt.date.fromisoformat, default=DEFAULT_START, help="first day")
    args = parser.parse_args(argv)
    if args.days < 1 or args.customers < 1:
        parser.error("--days and --customers must be at least 1")
    config = GenerateConfig(days=args.days, customers=args.customers, seed=args.seed, start=args.start)
    days = generate(args.output, config)
    print(f"wrote {len(days)} days ({days[0]} .. {days[-1]}) of {KEY}/{LABEL} data to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
