"""Run every benchmark script in benchmarks/ in turn (what `make bench` does).

Each benchmark is a standalone script that prints its own table and writes its JSON under
benchmarks/results/. Pass names to run a subset: `python benchmarks/run_all.py pfs_transfer`.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Cheap ones first, so a failure in the long full-size run does not hide the others.
ORDER = ["pfs_transfer", "pps_datums", "stages", "full_pipeline"]


def discover() -> list[Path]:
    scripts = {p.stem: p for p in HERE.glob("*.py") if p.stem not in {"run_all", "__init__"}}
    # baseline_* scripts need a --csv and are run by full_pipeline.py, not on their own
    scripts = {name: path for name, path in scripts.items() if not name.startswith(("_", "baseline_"))}
    ordered = [scripts.pop(name) for name in ORDER if name in scripts]
    return ordered + sorted(scripts.values())


def main(argv: list[str]) -> int:
    scripts = discover()
    if argv:
        wanted = set(argv)
        scripts = [s for s in scripts if s.stem in wanted]
        missing = wanted - {s.stem for s in scripts}
        if missing:
            print(f"no such benchmark: {', '.join(sorted(missing))}", file=sys.stderr)
            return 2
    failures = []
    for script in scripts:
        print(f"\n=== benchmarks/{script.name} ===", flush=True)
        started = time.perf_counter()
        code = subprocess.call([sys.executable, str(script)])
        print(f"=== {script.name}: exit {code} after {time.perf_counter() - started:.1f} s ===", flush=True)
        if code:
            failures.append(script.name)
    if failures:
        print(f"\nfailed: {', '.join(failures)}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
