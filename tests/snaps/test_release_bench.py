"""The release benchmark runs (small) on both backends and reports every figure."""

from __future__ import annotations

import pytest
from benchmarks import release_bench


def test_release_bench_small(database_url: str) -> None:
    figures = release_bench.run(database_url, snaps=200, seconds=0.3)
    assert figures["snaps"] == 200
    for name in ("trivial-writes-per-second", "releases-per-second", "refresh-lookups-per-second"):
        assert figures[name] > 0, figures
    assert figures["release-ratio"] > 0 and figures["refresh-lookup-ratio"] > 0


def test_release_bench_main_prints_its_figures(capsys: pytest.CaptureFixture[str]) -> None:
    assert release_bench.main(["--snaps", "50", "--seconds", "0.2"]) == 0
    out = capsys.readouterr().out
    assert "x trivial write" in out and '"release-ratio"' in out
