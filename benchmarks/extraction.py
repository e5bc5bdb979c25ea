"""Extraction throughput and memory on large embedded-demo MIMIC-III tables.

For each size (CHARTEVENTS rows), writes a demo with :func:`tardiff.demo.write_demo` (or reuses
``--raw-dir``), extracts it in a fresh subprocess (so peak RSS is that of the extraction alone)
and prints raw rows scanned, rows/s, peak RSS and the time extrapolated to full MIMIC-III
(330,712,483 CHARTEVENTS rows). Two sizes show whether memory stays flat.

    python benchmarks/extraction.py --rows 5e6 20e6 --work /tmp/tardiff-bench
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from tardiff.config import validate_config

FULL_MIMIC_CHARTEVENTS = 330_712_483
_DEFAULTS = validate_config({"datasets": {"bench": {"source": "mimic3"}}})
SPLIT = _DEFAULTS["split"]
ENTRY = _DEFAULTS["datasets"]["bench"]  # the MIMIC-III defaults: 7 features, 24 x 1 h
CHILD = """
import json, sys
from tardiff.extract import build_cohort, cohort
from tardiff.layout import CohortFiles
from tardiff.settings import SplitSettings
raw, out = sys.argv[1], CohortFiles.in_dir(sys.argv[2])
entry, split = json.loads(sys.argv[3]), SplitSettings.from_config(json.loads(sys.argv[4]))
cohort.MEMORY_LIMIT = sys.argv[5] or cohort.MEMORY_LIMIT
print(json.dumps({**build_cohort(entry, raw, out, split, 0), "memory_limit": cohort.MEMORY_LIMIT}))
"""


def make_demo(folder: Path, rows: int) -> None:
    """Write a demo with about ``rows`` CHARTEVENTS rows (stays sized from a small pilot)."""
    from tardiff.demo import write_demo

    pilot = write_demo("mimic3", folder.parent / f"{folder.name}.pilot", 200, seed=1)
    per_stay = pilot["rows"]["CHARTEVENTS"] / 200
    n_stays = max(200, round(rows / per_stay))
    start = time.perf_counter()
    write_demo("mimic3", folder, n_stays, seed=0)
    print(f"  demo: {n_stays} stays written in {time.perf_counter() - start:.0f} s", flush=True)


def extract(raw: Path, out: Path, memory_limit: str) -> tuple[dict, float]:
    """Run build_cohort in a subprocess; its summary and the wall time seen from outside."""
    start = time.perf_counter()
    args = [
        sys.executable,
        "-c",
        CHILD,
        str(raw),
        str(out),
        json.dumps(ENTRY),
        json.dumps(SPLIT),
        memory_limit,
    ]
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"extraction failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1]), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows",
        type=float,
        nargs="+",
        default=[5e6, 20e6],
        help="CHARTEVENTS rows per size (default 5e6 20e6)",
    )
    parser.add_argument(
        "--work",
        type=Path,
        default=Path("/tmp/tardiff-bench"),
        help="folder for demos (reused when present) and outputs",
    )
    parser.add_argument("--raw-dir", type=Path, help="extract this MIMIC-III folder instead")
    parser.add_argument(
        "--memory-limit",
        default="",
        help="DuckDB memory_limit for the run (default: the package's)",
    )
    args = parser.parse_args()
    if args.raw_dir:
        sizes = [(args.raw_dir, None)]
    else:
        sizes = [(args.work / f"mimic3_{int(r)}", int(r)) for r in args.rows]
    results = []
    for raw, rows in sizes:
        if not (raw / "CHARTEVENTS.csv.gz").exists():
            print(f"writing demo {raw} (~{rows:,} CHARTEVENTS rows)", flush=True)
            make_demo(raw, rows)
        summary, wall = extract(raw, args.work / f"{raw.name}_cohort", args.memory_limit)
        scanned = summary["rows_scanned"]
        total = sum(scanned.values())
        result = {
            "raw_dir": str(raw),
            "chartevents_rows": scanned["CHARTEVENTS"],
            "raw_rows_scanned": total,
            "stays": summary["n_stays"],
            "extract_seconds": summary["wall_s"],
            "process_seconds": round(wall, 1),
            "rows_per_second": round(total / summary["wall_s"]),
            "peak_rss_mb": summary["peak_rss_mb"],
            "memory_limit": summary["memory_limit"],
            "full_mimic_minutes": round(
                FULL_MIMIC_CHARTEVENTS / (scanned["CHARTEVENTS"] / summary["wall_s"]) / 60, 1
            ),
        }
        results.append(result)
        print(json.dumps(result), flush=True)
    print("\nCHARTEVENTS rows | stays | rows/s | peak RSS MiB | DuckDB limit | full MIMIC (min)")
    for r in results:
        print(
            f"{r['chartevents_rows']:>16,} | {r['stays']:>5} | {r['rows_per_second']:>9,} | "
            f"{r['peak_rss_mb']:>12.0f} | {r['memory_limit']:>12} | {r['full_mimic_minutes']:>6}"
        )


if __name__ == "__main__":
    main()
