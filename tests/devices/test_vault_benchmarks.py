"""The vault's load test and benchmark run end to end at a small size (figures are not asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from benchmarks import vault_load

REPOSITORY = Path(__file__).resolve().parents[2]


def test_vault_load_small(database_url: str) -> None:
    # the embedded default is the data directory's own SQLite file: no URL for it
    source = [] if database_url.startswith("sqlite") else ["--database-url", database_url]
    argv = ["--devices", "24", "--keys", "4", "--duplicates", "3", *source]
    assert vault_load.main(argv) == 0  # every check: 200s, no 5xx, one winner per duplicate


def test_vault_bench_small() -> None:
    # A process of its own, as it is run: it points SoftHSM at a token directory of its
    # own, which a process that has loaded the module already would not see.
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.vault_bench", "--seconds", "1", "--concurrency", "2"],
        cwd=REPOSITORY, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    # exit 0: every answer of every window checked, every answered serial recorded
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    windows = ("http_serials_per_s", "ceiling_per_s", "http_softhsm_per_s", "registrations_per_s")
    for name in windows:
        assert figures.get(name, 0) > 0, name
