"""The server sweeps orphaned snap files in the background while it serves (web/_sweeper.py)."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta

from benchmarks._timing import run_async

from iotstore.blobstore import FileBlobStore
from iotstore.web._sweeper import SWEEP_INTERVAL
from tests.web._support import throwaway_app


def test_the_app_lifespan_sweeps_periodically() -> None:
    with throwaway_app() as app:
        blobs = app.state.deployment.blobs
        assert isinstance(blobs, FileBlobStore)
        source = app.state.deployment.data_dir / "loose.snap"
        source.write_bytes(b"an upload nobody pushed, two days ago")
        key = blobs.put_file(source).key
        then = (datetime.now(UTC) - timedelta(days=2)).timestamp()
        os.utime(blobs.path(key), (then, then))
        app.state.blob_sweep_interval = 0.01

        async def serve_until_swept() -> bool:
            async with app.router.lifespan_context(app):
                for _ in range(3000):  # a bound, not a timing claim: normally the first pass
                    if not blobs.exists(key):
                        return True
                    await asyncio.sleep(0.01)
            return False

        assert run_async(serve_until_swept())


def test_the_default_interval_is_modest() -> None:
    assert 600 <= SWEEP_INTERVAL <= 24 * 3600
