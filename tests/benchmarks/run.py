"""Run every benchmark (tests/benchmarks/bench_*.py) and print their tables: `make bench`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    only = sys.argv[1:]
    failed = 0
    for script in sorted(HERE.glob("bench_*.py")):
        if only and not any(name in script.stem for name in only):
            continue
        print(f"\n# {script.stem}", flush=True)
        failed |= subprocess.run([sys.executable, str(script)], cwd=HERE.parents[1]).returncode != 0
    sys.exit(1 if failed else 0)
