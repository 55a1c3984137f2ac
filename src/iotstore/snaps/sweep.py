"""Deleting snap files nothing refers to: interrupted, unclaimed, refused and forgotten uploads.

A blob becomes an orphan when its upload id is never pushed (the storage
endpoint writes no row), when the server dies between storing and pushing,
or when the automated checks refuse the push: :func:`sweep_orphan_blobs`
first lets go of refused uploads' blobs and of uploads never pushed, then
asks the blob store to delete what no row names. Revisions' blobs are always
named, so a released (or any) revision's file is never swept.

``older_than`` must exceed the web edge's claim window (6 h,
``web/publisher_api/_uploads.py``): a blob older than that can no longer be
claimed, so the gap between reading the referenced keys and deleting cannot
lose a file a push is about to name.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from iotstore.blobstore import BlobStore
from iotstore.db import SqlDatabase, utcnow
from iotstore.stores.audit import AuditLog

from .services import UploadService

__all__ = ["MIN_SWEEP_AGE", "SWEEP_AGE", "SweepResult", "sweep_orphan_blobs"]

log = logging.getLogger("iotstore.snaps.sweep")

# the default grace: a day, so a refused push stays inspectable for a while
SWEEP_AGE = timedelta(hours=24)
# above the 6 h claim window with an hour's margin for clocks and slow pushes
MIN_SWEEP_AGE = timedelta(hours=7)


@dataclass(frozen=True)
class SweepResult:
    """What one sweep did."""

    released: int  # refused uploads whose blob was let go
    forgotten: int  # upload rows never pushed, deleted
    deleted: int  # blobs and upload leftovers the blob store removed


def sweep_orphan_blobs(
    database: SqlDatabase,
    blobs: BlobStore,
    *,
    older_than: timedelta = SWEEP_AGE,
    now: datetime | None = None,
) -> SweepResult:
    """Release refused and never-pushed uploads older than ``older_than``, then delete
    every blob older than that which no upload or revision names.

    ``now`` (default: the clock) dates the database side; the blob store ages
    blobs by its own clock. Raises :class:`ValueError` for an ``older_than``
    under :data:`MIN_SWEEP_AGE`.
    """
    if older_than < MIN_SWEEP_AGE:
        raise ValueError(f"older_than must be at least {MIN_SWEEP_AGE} (the claim window + 1 h)")
    cutoff = (now or utcnow()) - older_than
    with database.unit_of_work() as session:
        uploads = UploadService(session, AuditLog(session))
        released = uploads.release_failed(cutoff)
        stale = uploads.expired(cutoff)
        for upload in stale:
            uploads.forget(upload)
    # a separate read: the keys as committed, after the releases above
    with database.unit_of_work(write=False) as session:
        referenced = UploadService(session, AuditLog(session)).referenced_blob_keys()
    deleted = blobs.sweep_orphans(referenced, older_than=older_than)
    result = SweepResult(released=released, forgotten=len(stale), deleted=deleted)
    log.info("blob sweep: %s", result)
    return result
