"""Invitations by email: invite, list, revoke, accept (filled in by the invitations work)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1", tags=["invitations"])
