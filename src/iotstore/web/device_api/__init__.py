"""snapd's store API (device-api.md): sessions, snap action, catalogue, assertions, downloads.

One router for ``web/app.py``, plus :data:`snap_action_router` (the snap action:
snapd's hot path), which the app includes before every other router; each module
owns one part of the protocol.
"""

from __future__ import annotations

from fastapi import APIRouter

from . import assertions, downloads, inventory, sessions, snaps

__all__ = ["router", "snap_action_router"]

snap_action_router = snaps.snap_action_router

router = APIRouter()
for _module in (sessions, snaps, assertions, downloads, inventory):
    router.include_router(_module.router)
