"""Sign-in for people: local passwords and OpenID Connect, dashboard sessions (filled in)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["sign-in"])
