"""Cold import of each Lambda handler module, as Lambda's init phase pays it.

Each measurement is a fresh Python process with the function folder and the ledger layer on
sys.path (as /var/task and /opt/python are on Lambda), timing `import app` alone. Median of
--repeat runs. Goal: <= 300 ms per handler.

    .venv/bin/python bench/bench_cold_import.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS = ["start_crawler", "start_job"]
GOAL_MS = 300

SNIPPET = """
import sys, time
sys.path[:0] = [{code!r}, {layer!r}]
t = time.perf_counter()
import app
print((time.perf_counter() - t) * 1000)
"""


def cold_import_ms(function: str) -> float:
    code = str(ROOT / "functions" / function)
    layer = str(ROOT / "functions" / "ledger_layer")
    out = subprocess.run([sys.executable, "-c", SNIPPET.format(code=code, layer=layer)],
                         capture_output=True, text=True, check=True,
                         env={"POWERTOOLS_SERVICE_NAME": "bench", "AWS_DEFAULT_REGION": "us-east-1",
                              "PATH": "/usr/bin:/bin"})
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    worst = 0.0
    for function in FUNCTIONS:
        runs = [cold_import_ms(function) for _ in range(args.repeat)]
        median = statistics.median(runs)
        worst = max(worst, median)
        print(f"{function:14} cold import median {median:6.1f} ms"
              f"  (min {min(runs):.1f}, max {max(runs):.1f}, n={len(runs)})")
    print(f"worst_ms={worst:.1f} goal_ms={GOAL_MS} ratio_to_goal={worst / GOAL_MS:.2f}")


if __name__ == "__main__":
    main()
