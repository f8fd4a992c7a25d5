"""Regenerate the demo output shown in README.md from the current code.

Runs ``pseval demo`` in an 80-column terminal width and puts what it prints on stdout (the result table,
the baselines and the dataset counts; progress and file notes go to stderr) between the markers

    <!-- demo-output:start -->
    <!-- demo-output:end -->

in README.md. ``--check`` only compares and exits 1 when the README is out of date.

    python scripts/update_readme_demo.py                 # run the demo, rewrite the block
    python scripts/update_readme_demo.py --check         # fail if the README shows other output
    python scripts/update_readme_demo.py --out DIR       # results folder of the demo (default results/demo)
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
START = "<!-- demo-output:start -->"
END = "<!-- demo-output:end -->"
WIDTH = 80


def pseval_command() -> list[str]:
    """The console script beside this interpreter, else ``python -m pseval.cli``."""
    script = Path(sys.executable).parent / "pseval"
    if script.exists():
        return [str(script)]
    found = shutil.which("pseval")
    return [found] if found else [sys.executable, "-m", "pseval.cli"]


def demo_output(out: str) -> str:
    """What ``pseval demo`` prints on stdout at 80 columns (no report, so only the table is rebuilt)."""
    env = {**os.environ, "COLUMNS": str(WIDTH), "NO_COLOR": "1", "TERM": "dumb"}
    proc = subprocess.run(
        [*pseval_command(), "demo", "--out", out, "--no-report"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"pseval demo failed with exit code {proc.returncode}")
    lines = [line.rstrip() for line in proc.stdout.splitlines()]
    return "\n".join(lines).strip("\n") + "\n"


def splice(readme: str, output: str) -> str:
    """``readme`` with the block between the markers replaced by ``output`` in a text code block."""
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), flags=re.S)
    if not pattern.search(readme):
        raise SystemExit(f"README.md has no {START} … {END} block")
    block = f"{START}\n```text\n{output}```\n{END}"
    return pattern.sub(lambda _m: block, readme, count=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md is out of date")
    parser.add_argument("--out", default="results/demo", help="the demo's results folder")
    args = parser.parse_args()
    readme = README.read_text(encoding="utf-8")
    updated = splice(readme, demo_output(args.out))
    if args.check:
        if updated != readme:
            raise SystemExit("README.md shows demo output that differs from the current code's")
        print("README.md demo output is current")
        return
    if updated != readme:
        README.write_text(updated, encoding="utf-8")
        print("README.md updated")
    else:
        print("README.md already current")


if __name__ == "__main__":
    main()
