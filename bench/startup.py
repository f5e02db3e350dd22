"""How long a command takes to start, beside `python -c pass`, measured in one run.

    python bench/startup.py [RUNS]

Runs each command RUNS times (default 7) in a fresh process on a desk made in a
temporary folder and prints the best time of each and its ratio to the interpreter's own
start: `newsletter --version` and `--help` import no command, `newsletter subscribers
list` reads the database and pays for SQLAlchemy, not for premailer, feedparser,
alembic or the web app. The targets: --help and --version under 0.3 s.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
TARGET = 0.3


def best(command: list[str], env: dict[str, str], cwd: str, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, env=env, cwd=cwd, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return min(times)


def main(runs: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
        subprocess.run([str(BIN / "newsletter"), "init"], env=env, cwd=folder, check=True,
                       capture_output=True)  # fmt: skip
        python = best([sys.executable, "-c", "pass"], env, folder, runs)
        print(f"{'python -c pass':<32} {python:6.3f} s")
        for args in (["--version"], ["--help"], ["subscribers", "list"]):
            took = best([str(BIN / "newsletter"), *args], env, folder, runs)
            verdict = ""
            if args[0].startswith("--"):
                verdict = f"  target under {TARGET:g} s: {'met' if took < TARGET else 'NOT met'}"
            label = "newsletter " + " ".join(args)
            print(f"{label:<32} {took:6.3f} s  ({took / python:4.1f} x python){verdict}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
