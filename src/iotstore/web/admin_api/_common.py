"""Shared pieces of the admin API: body models, pagination, the permission-checked context."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query
from pydantic import BaseModel, ConfigDict

__all__ = ["After", "Body", "Limit", "page"]


def _hyphenate(name: str) -> str:
    return name.replace("_", "-")


class Body(BaseModel):
    """Request bodies: hyphenated JSON names, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=_hyphenate, populate_by_name=True, extra="forbid", str_max_length=4096
    )


Limit = Annotated[int, Query(ge=1, le=500, description="Page size.")]
After = Annotated[str, Query(max_length=128, description="Cursor from the previous page.")]


def page(items: list[dict[str, Any]], cursor: str | None, limit: int) -> dict[str, Any]:
    """A page of results; ``next`` is the cursor of the following page, or null."""
    return {"items": items, "next": cursor if len(items) == limit else None}
