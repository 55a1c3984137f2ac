"""snapd's store API (device-api.md): sessions, snap action, catalogue, assertions, downloads.

One router for ``web/app.py``; each module owns one part of the protocol.
"""

from __future__ import annotations

from fastapi import APIRouter

from . import assertions, downloads, inventory, sessions, snaps

__all__ = ["router"]

router = APIRouter()
for _module in (sessions, snaps, assertions, downloads, inventory):
    router.include_router(_module.router)
