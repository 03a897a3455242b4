"""Benchmarks that are long runs of an end-to-end test (it needs the test cluster's fixtures):
run it through pytest with its size in the environment, keep what it printed."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class ScenarioRun:
    returncode: int
    stdout: str
    elapsed: float

    @property
    def verdict(self) -> str:
        return "every invariant held" if self.returncode == 0 else "FAILED"

    def line(self, marker: str) -> str | None:
        """The summary line the test printed (it contains `marker`)."""
        return next((line for line in self.stdout.splitlines() if marker in line), None)

    def failure(self) -> str:
        """The first assertion lines, for RESULTS.md, when the run failed."""
        if self.returncode == 0:
            return ""
        errors = [line for line in self.stdout.splitlines() if line.startswith("E ")][:10]
        return "\n\nFirst assertion lines:\n\n```\n" + "\n".join(errors) + "\n```"


def run_test(test: str, env: dict[str, str]) -> ScenarioRun:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", test],
        cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, check=False,
    )  # fmt: skip
    print(done.stdout[-3000:])
    return ScenarioRun(done.returncode, done.stdout, time.monotonic() - started)
