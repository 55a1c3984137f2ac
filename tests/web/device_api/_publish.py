"""Publish real snaps into a deployment through the publishing services, for device tests.

Each call is one committed unit of work, as a publisher's request would be:
snap files are built with ``build_snap`` (mksquashfs), stored in the
deployment's blob store, pushed (inspection, snap-revision signed by the root)
and released.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from iotstore import asserts
from iotstore.deployment import Deployment
from iotstore.snaps.services import Publishing
from iotstore.snaps.testing import build_snap
from iotstore.stores.audit import Actor

__all__ = ["Publisher"]


class Publisher:
    """An account that registers, pushes and releases snaps in a store."""

    def __init__(self, deployment: Deployment, account_id: str, workdir: Path) -> None:
        self.deployment = deployment
        self.account_id = account_id
        self.actor = Actor(account_id=account_id, address="test")
        self.workdir = workdir
        self.names: dict[str, str] = {}

    def _publishing(self, session: Any) -> Publishing:
        d = self.deployment
        return Publishing(session, keystore=d.keystore, root=d.root, blobs=d.blobs)

    def adopt(self, snap_id: str, name: str, tracks: Sequence[str] = ()) -> None:
        """Publish into a snap registered elsewhere (the demo's), signing its declaration
        if it has none, and creating ``tracks``."""
        self.names[snap_id] = name
        with self.deployment.database.unit_of_work() as session:
            publishing = self._publishing(session)
            snap = publishing.snaps.get(snap_id)
            try:
                publishing.snaps.declaration(snap)
            except asserts.NotFoundError:  # the demo seeds bare rows
                publishing.snaps.update_declaration(self.actor, snap, {})
            for track in tracks:
                if track not in publishing.snaps.tracks(snap):
                    publishing.snaps.create_track(self.actor, snap, track)

    def register(
        self, store_id: str, name: str, *, snap_type: str = "app", private: bool = False
    ) -> str:
        """Register ``name``; returns its snap-id."""
        with self.deployment.database.unit_of_work() as session:
            snap = self._publishing(session).snaps.register(
                self.actor, store_id, name, snap_type=snap_type, private=private
            )
            self.names[snap.snap_id] = name
            return snap.snap_id

    def push(
        self,
        snap_id: str,
        version: str,
        channels: Sequence[str] = ("stable",),
        *,
        progressive: float | None = None,
        **build: Any,
    ) -> int:
        """Build, upload, push and release a new revision; returns its number."""
        name = self.names[snap_id]
        path = build_snap(self.workdir, name, version, **build)
        return self.push_file(snap_id, path, channels, progressive=progressive)

    def push_file(
        self,
        snap_id: str,
        path: Path,
        channels: Sequence[str] = ("stable",),
        *,
        progressive: float | None = None,
    ) -> int:
        """Upload, push and release a snap file built elsewhere; returns the revision."""
        blob = self.deployment.blobs.put_file(path)
        with self.deployment.database.unit_of_work() as session:
            publishing = self._publishing(session)
            snap = publishing.snaps.get(snap_id)
            upload = publishing.uploads.record(self.actor, self.account_id, blob, path.name)
            status = publishing.revisions.push(self.actor, snap, upload.id)
            revision = status.revision
            assert revision is not None, status
        if channels:
            self.release(snap_id, revision, channels, progressive=progressive)
        return revision

    def release(
        self,
        snap_id: str,
        revision: int,
        channels: Sequence[str],
        *,
        progressive: float | None = None,
    ) -> None:
        """Release ``revision`` to ``channels``."""
        with self.deployment.database.unit_of_work() as session:
            publishing = self._publishing(session)
            snap = publishing.snaps.get(snap_id)
            publishing.releases.release(
                self.actor, snap, revision, channels, progressive_percentage=progressive
            )

    def close(self, snap_id: str, channels: Sequence[str]) -> None:
        """Close channels."""
        with self.deployment.database.unit_of_work() as session:
            publishing = self._publishing(session)
            publishing.releases.close(self.actor, publishing.snaps.get(snap_id), channels)
