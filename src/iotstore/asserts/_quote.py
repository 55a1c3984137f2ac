"""Quoting for error messages."""

from __future__ import annotations

import json


def q(value: object) -> str:
    """Quote like Go's ``%q`` so our messages read exactly as snapd's."""
    return json.dumps(str(value), ensure_ascii=False)
