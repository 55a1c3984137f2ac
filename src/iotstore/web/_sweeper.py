"""The app's lifespan: sweep orphaned snap files in the background while serving.

Every :data:`SWEEP_INTERVAL` the server runs
:func:`~iotstore.snaps.sweep.sweep_orphan_blobs` in a worker thread (it lists
and deletes files or S3 objects). Several server processes may each sweep:
the sweep is idempotent, so they only repeat work. ``iotstore blobs sweep``
runs the same sweep once, from cron or by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from iotstore.snaps.sweep import sweep_orphan_blobs

__all__ = ["SWEEP_INTERVAL", "blob_sweeper"]

log = logging.getLogger("iotstore.web")

# hourly: orphans are only deleted once a day old, so sweeping more often gains nothing
SWEEP_INTERVAL = 3600.0


async def _sweep_forever(app: FastAPI, interval: float) -> None:
    while True:
        # first sleep, then sweep: a server that starts and stops at once does no I/O
        await asyncio.sleep(interval)
        deployment = app.state.deployment
        try:
            await asyncio.to_thread(sweep_orphan_blobs, deployment.database, deployment.blobs)
        except Exception:  # a failed sweep (database or S3 away) is retried next time
            log.exception("blob sweep failed")


@contextlib.asynccontextmanager
async def blob_sweeper(app: FastAPI) -> AsyncIterator[None]:
    """Lifespan: run the periodic sweep while the app serves.

    ``app.state.blob_sweep_interval`` (seconds) overrides :data:`SWEEP_INTERVAL`;
    0 turns the sweep off.
    """
    interval = float(getattr(app.state, "blob_sweep_interval", SWEEP_INTERVAL))
    task = asyncio.create_task(_sweep_forever(app, interval)) if interval > 0 else None
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
