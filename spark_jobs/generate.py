"""Generate PaySim-shaped transaction CSVs (``pachflow generate``).

Same 11 columns as the Kaggle file, its transaction-type mix, fraud only in TRANSFER and
CASH_OUT at ~0.13 %, PaySim's balance arithmetic (and its quirks: fraud empties the origin
account, and fraud destinations often show zero balances) and the isFlaggedFraud rule
(a fraudulent TRANSFER over 200,000, flagged only rarely as in the real data). Customers
repeat (``--customers``), so per-customer aggregation means something; ``--days`` writes one
file per day for daily retraining. Rows are produced in chunks with numpy and written with
pyarrow's CSV writer, so memory stays bounded whatever ``--rows`` is.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from spark_jobs.schema import ARROW_SCHEMA, TRANSACTION_TYPES

log = logging.getLogger("pachflow.generate")

PAYSIM_ROWS = 6_362_620
PAYSIM_FRAUD_RATE = 8_213 / 6_362_620
# Share of all rows per type in the Kaggle file, in TRANSACTION_TYPES order.
TYPE_SHARE = {
    "CASH_IN": 1_399_284,
    "CASH_OUT": 2_237_500,
    "DEBIT": 41_432,
    "PAYMENT": 2_151_495,
    "TRANSFER": 532_909,
}
# Fraud probability within each type in the Kaggle file (fraud only in these two).
FRAUD_GIVEN_TYPE = {"TRANSFER": 4_097 / 532_909, "CASH_OUT": 4_116 / 2_237_500}
# log-normal median amount per type (PaySim amounts are heavy-tailed).
MEDIAN_AMOUNT = {
    "CASH_IN": 140_000.0,
    "CASH_OUT": 150_000.0,
    "DEBIT": 3_000.0,
    "PAYMENT": 9_500.0,
    "TRANSFER": 490_000.0,
}
MAX_AMOUNT = 10_000_000.0  # PaySim caps a single transaction's amount at 10M
FLAG_THRESHOLD = 200_000.0
FLAG_RATE = 16 / 4_097  # share of fraudulent TRANSFERs that the real data flags
LAST_STEP = 743
_PRIME = 2_147_483_647  # ids are an affine bijection mod this prime, so they never collide
_TYPE_IDX = {name: i for i, name in enumerate(TRANSACTION_TYPES)}


@dataclass(frozen=True)
class GenerateConfig:
    rows: int = PAYSIM_ROWS
    customers: int | None = None
    days: int = 1
    seed: int = 42
    fraud_rate: float = PAYSIM_FRAUD_RATE
    chunk_rows: int = 500_000
    prefix: str = "paysim"

    @property
    def n_customers(self) -> int:
        return max(1, self.customers if self.customers else self.rows // 4)


def _ids(prefix: str, index: np.ndarray, salt: int) -> pa.Array:
    """Stable, distinct PaySim-style ids (``C1234567890``) for integer indices."""
    mult = 1_103_515_245 + 2 * salt
    numbers = (index.astype(np.int64) * mult + 7_919 * salt + 1_000_003) % _PRIME
    return pc.binary_join_element_wise(prefix, pc.cast(pa.array(numbers), pa.string()), "")


class _Generator:
    def __init__(self, config: GenerateConfig) -> None:
        self.config = config
        rng = np.random.default_rng([config.seed, 0])
        n = config.n_customers
        # A customer's typical balance; about a third of PaySim originators start at zero.
        self.customer_balance = np.where(
            rng.random(n) < 0.33, 0.0, rng.lognormal(mean=np.log(60_000.0), sigma=1.6, size=n)
        )
        share = np.array([TYPE_SHARE[t] for t in TRANSACTION_TYPES], dtype=float)
        self.type_cdf = np.cumsum(share / share.sum())
        scale = config.fraud_rate / PAYSIM_FRAUD_RATE
        self.fraud_p = np.array([min(1.0, FRAUD_GIVEN_TYPE.get(t, 0.0) * scale) for t in TRANSACTION_TYPES])
        self.log_median = np.log(np.array([MEDIAN_AMOUNT[t] for t in TRANSACTION_TYPES]))

    def chunk(self, rows: int, step_lo: int, step_hi: int, key: tuple[int, ...]) -> pa.Table:
        """One table of ``rows`` transactions with steps in [step_lo, step_hi], sorted by step."""
        rng = np.random.default_rng([self.config.seed, *key])
        step = np.sort(rng.integers(step_lo, step_hi + 1, size=rows))
        tidx = np.searchsorted(self.type_cdf, rng.random(rows), side="right").clip(
            0, len(TRANSACTION_TYPES) - 1
        )
        is_fraud = rng.random(rows) < self.fraud_p[tidx]
        cash_in = tidx == _TYPE_IDX["CASH_IN"]
        payment = tidx == _TYPE_IDX["PAYMENT"]
        transfer = tidx == _TYPE_IDX["TRANSFER"]
        risky = transfer | (tidx == _TYPE_IDX["CASH_OUT"])

        cust = rng.integers(0, self.config.n_customers, size=rows)
        amount = np.minimum(rng.lognormal(self.log_median[tidx], 1.0), MAX_AMOUNT)
        old_org = self.customer_balance[cust] * rng.uniform(0.5, 1.5, size=rows)
        # Fraud targets well-funded accounts and empties them (PaySim: amount == oldbalanceOrg).
        fraud_balance = np.minimum(rng.lognormal(np.log(1_300_000.0), 1.0, size=rows), MAX_AMOUNT)
        old_org = np.where(is_fraud, fraud_balance, old_org)
        empties = is_fraud | (risky & (old_org > 0) & (rng.random(rows) < 0.02))
        amount = np.where(empties, np.minimum(old_org, MAX_AMOUNT), amount)
        new_org = np.where(cash_in, old_org + amount, np.maximum(old_org - amount, 0.0))

        old_dest = np.where(rng.random(rows) < 0.35, 0.0, rng.lognormal(np.log(900_000.0), 1.5, size=rows))
        new_dest = np.where(cash_in, np.maximum(old_dest - amount, 0.0), old_dest + amount)
        # PaySim quirk: many fraud destinations (and a few others) report zero balances.
        zero_dest = payment | (is_fraud & (rng.random(rows) < 0.5)) | (risky & (rng.random(rows) < 0.005))
        old_dest = np.where(zero_dest, 0.0, old_dest)
        new_dest = np.where(zero_dest, 0.0, new_dest)

        flagged = is_fraud & transfer & (amount > FLAG_THRESHOLD) & (rng.random(rows) < FLAG_RATE)
        dest_index = rng.integers(0, max(1, self.config.n_customers // 2), size=rows)
        name_dest = pc.if_else(
            pa.array(payment), _ids("M", dest_index, salt=2), _ids("C", dest_index, salt=3)
        )
        columns = [
            pa.array(step, pa.int64()),
            pc.take(pa.array(TRANSACTION_TYPES), pa.array(tidx)),
            pa.array(np.round(amount, 2)),
            _ids("C", cust, salt=1),
            pa.array(np.round(old_org, 2)),
            pa.array(np.round(new_org, 2)),
            name_dest,
            pa.array(np.round(old_dest, 2)),
            pa.array(np.round(new_dest, 2)),
            pa.array(is_fraud.astype(np.int64)),
            pa.array(flagged.astype(np.int64)),
        ]
        return pa.Table.from_arrays(columns, schema=ARROW_SCHEMA)


def day_files(config: GenerateConfig) -> list[tuple[str, int, int, int]]:
    """(file name, rows, first step, last step) for each output file."""
    if config.days == 1:
        return [(f"{config.prefix}.csv", config.rows, 1, LAST_STEP)]
    base, extra = divmod(config.rows, config.days)
    width = max(2, len(str(config.days)))
    return [
        (
            f"{config.prefix}-day-{day + 1:0{width}d}.csv",
            base + (1 if day < extra else 0),
            day * 24 + 1,
            day * 24 + 24,
        )
        for day in range(config.days)
    ]


def generate(config: GenerateConfig, output_dir: Path) -> list[Path]:
    """Write the CSV file(s) for ``config`` into ``output_dir``; return their paths."""
    if config.rows < 1 or config.days < 1 or config.chunk_rows < 1:
        raise ValueError("rows, days and chunk size must be positive")
    output_dir.mkdir(parents=True, exist_ok=True)
    gen = _Generator(config)
    written: list[Path] = []
    done, started = 0, time.monotonic()
    # The header is written by hand: pyarrow would quote the names, the Kaggle file does not.
    header = (",".join(ARROW_SCHEMA.names) + "\n").encode()
    write_options = pacsv.WriteOptions(include_header=False, quoting_style="none")
    for day, (name, rows, step_lo, step_hi) in enumerate(day_files(config)):
        path = output_dir / name
        tmp = path.with_name(f".{name}.tmp")
        n_chunks = max(1, -(-rows // config.chunk_rows))
        span = step_hi - step_lo + 1
        with (
            open(tmp, "wb") as sink,
            pacsv.CSVWriter(sink, ARROW_SCHEMA, write_options=write_options) as writer,
        ):
            sink.write(header)
            for k in range(n_chunks):
                chunk_rows = rows // n_chunks + (1 if k < rows % n_chunks else 0)
                lo = step_lo + (k * span) // n_chunks
                hi = max(lo, step_lo + ((k + 1) * span) // n_chunks - 1)
                writer.write_table(gen.chunk(chunk_rows, lo, hi, key=(day + 1, k)))
                done += chunk_rows
                log.info("generated %s/%s rows (%s)", f"{done:,}", f"{config.rows:,}", name)
        tmp.replace(path)
        written.append(path)
    log.info(
        "wrote %d file(s), %s rows in %.1fs to %s",
        len(written),
        f"{done:,}",
        time.monotonic() - started,
        output_dir,
    )
    return written


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pachflow generate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", "-o", type=Path, required=True, help="directory for the CSV file(s)")
    parser.add_argument(
        "--rows", type=int, default=PAYSIM_ROWS, help="total rows (default: PaySim's 6,362,620)"
    )
    parser.add_argument(
        "--customers", type=int, default=None, help="distinct originators (default: rows / 4)"
    )
    parser.add_argument(
        "--days", type=int, default=1, help="number of files, one per day (default 1: one file, steps 1-743)"
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--fraud-rate",
        type=float,
        default=PAYSIM_FRAUD_RATE,
        help="target fraud share (default PaySim's ~0.13%%)",
    )
    parser.add_argument(
        "--chunk-rows", type=int, default=500_000, help="rows generated per chunk (bounds memory)"
    )
    parser.add_argument("--prefix", default="paysim", help="file name prefix")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = GenerateConfig(
        rows=args.rows,
        customers=args.customers,
        days=args.days,
        seed=args.seed,
        fraud_rate=args.fraud_rate,
        chunk_rows=args.chunk_rows,
        prefix=args.prefix,
    )
    try:
        paths = generate(config, args.output)
    except (ValueError, OSError) as exc:
        log.error("generate failed: %s", exc)
        return 1
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
