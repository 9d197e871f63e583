"""Cold import of each Lambda handler module, as Lambda's init phase pays it.

Each measurement is a fresh Python process that sees what the function sees on Lambda and
nothing else: its folder (/var/task), the ledger layer (/opt/python), its requirements.txt as
`sam build` packages them, and boto3 as the Python runtime provides it - installed once into a
folder of their own under /tmp. Not the project's virtualenv: it also holds awscrt and pyOpenSSL
(for the SAM CLI), which botocore and urllib3 load when they find them, ~100 ms that no Lambda
function of this stack pays. The interpreter runs with -S (no site-packages). Timing `import app`
alone, median of --repeat runs. Goal: <= 250 ms per handler (issue 21).

    .venv/bin/python bench/bench_cold_import.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS = ["start_crawler", "start_job"]
GOAL_MS = 250

SNIPPET = """
import sys, time
sys.path[:0] = [{code!r}, {layer!r}, {packages!r}]
t = time.perf_counter()
import app
print((time.perf_counter() - t) * 1000)
"""


def lambda_packages(function: str) -> Path:
    """The function's requirements plus boto3 (the runtime's), at the lock's versions, in a folder
    reused while the requirements stay the same."""
    requirements = (ROOT / "functions" / function / "requirements.txt").read_text()
    lock = ROOT / "requirements-lock.txt"
    digest = hashlib.sha256((requirements + lock.read_text()).encode()).hexdigest()[:12]
    target = Path("/tmp") / f"sluice-lambda-{function}-{digest}"
    if not (target / ".complete").exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--target", str(target),
                        "-c", str(lock), "-r", str(ROOT / "functions" / function / "requirements.txt"),
                        "boto3"], check=True)
        (target / ".complete").touch()
    return target


def cold_import_ms(function: str, packages: Path) -> float:
    code = str(ROOT / "functions" / function)
    layer = str(ROOT / "functions" / "ledger_layer")
    out = subprocess.run([sys.executable, "-S", "-c",
                          SNIPPET.format(code=code, layer=layer, packages=str(packages))],
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
        packages = lambda_packages(function)
        runs = [cold_import_ms(function, packages) for _ in range(args.repeat)]
        median = statistics.median(runs)
        worst = max(worst, median)
        print(f"{function:14} cold import median {median:6.1f} ms"
              f"  (min {min(runs):.1f}, max {max(runs):.1f}, n={len(runs)})")
    print(f"worst_ms={worst:.1f} goal_ms={GOAL_MS} ratio_to_goal={worst / GOAL_MS:.2f}")


if __name__ == "__main__":
    main()
