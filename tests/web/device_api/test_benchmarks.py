"""The device-store benchmarks run end to end at a small size (figures are not asserted)."""

from __future__ import annotations

from pathlib import Path

from benchmarks import download_bench, refresh_bench


def test_refresh_bench_small(tmp_path: Path) -> None:
    figures = refresh_bench.run(
        tmp_path, snaps=40, revisions=120, installed=20, seconds=1, connections=2, workers=1
    )
    assert figures.non_2xx == 0
    assert figures.refresh_small > 0 and figures.refresh_large > 0 and figures.health > 0


def test_download_bench_small(tmp_path: Path) -> None:
    figures = download_bench.run(tmp_path, size=1 << 20, seconds=1, connections=2, workers=1)
    assert figures.iotstore > 0 and figures.nginx > 0
