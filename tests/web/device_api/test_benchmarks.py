"""The device-store benchmarks run end to end at a small size (figures are not asserted)."""

from __future__ import annotations

from pathlib import Path

import pytest
from benchmarks import device_load, download_bench, refresh_bench


def test_refresh_bench_small(tmp_path: Path) -> None:
    figures = refresh_bench.run(
        tmp_path, snaps=40, revisions=120, installed=20, seconds=1, connections=2, workers=1
    )
    assert figures.non_2xx == 0
    assert figures.refresh_small > 0 and figures.refresh_large > 0 and figures.health > 0


def test_download_bench_small(tmp_path: Path) -> None:
    figures = download_bench.run(tmp_path, size=1 << 20, seconds=1, connections=2, workers=1)
    assert figures.iotstore > 0 and figures.main_port > 0 and figures.nginx > 0


@pytest.mark.parametrize("mode", ["embedded", "scale-out"])
def test_device_load_small(tmp_path: Path, mode: str) -> None:
    stats = device_load.run(tmp_path, mode=mode, devices=4, seconds=4, think=0.2, every=1.5)
    assert stats.ok(), (stats.statuses, stats.stale, stats.mismatches, stats.errors)
    assert stats.releases >= 1 and stats.downloads >= 4
