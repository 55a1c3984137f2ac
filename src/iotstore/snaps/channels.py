"""Channel names (``track/risk/branch``), the risk order and device fallback.

Rules follow snapd's ``snap/channel`` package: a risk is one of stable,
candidate, beta, edge; a name with one part is a risk (or a track, then
meaning ``track/stable``); ``risk/branch`` uses the default track.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import ChannelError

__all__ = [
    "DEFAULT_TRACK",
    "RISKS",
    "Channel",
    "fallback_chain",
    "parse_channel",
    "valid_track_name",
]

RISKS = ("stable", "candidate", "beta", "edge")
DEFAULT_TRACK = "latest"
# snapd's naming.ValidateTrack / branch rules
_TRACK_RE = re.compile(r"[a-zA-Z0-9](?:[_.-]?[a-zA-Z0-9])*")
_BRANCH_RE = re.compile(r"[a-zA-Z0-9](?:[_.-]?[a-zA-Z0-9])*")
_MAX_TRACK = 28
_MAX_BRANCH = 128


def valid_track_name(name: str) -> bool:
    """Whether ``name`` is a valid track name (1-28 characters, no risk name)."""
    return len(name) <= _MAX_TRACK and bool(_TRACK_RE.fullmatch(name)) and name not in RISKS


@dataclass(frozen=True, slots=True, order=True)
class Channel:
    """A full channel: track, risk and an optional branch (``""`` when none)."""

    track: str
    risk: str
    branch: str = ""

    @property
    def name(self) -> str:
        """``track/risk`` or ``track/risk/branch``."""
        base = f"{self.track}/{self.risk}"
        return f"{base}/{self.branch}" if self.branch else base

    @property
    def risk_level(self) -> int:
        """0 for stable up to 3 for edge."""
        return RISKS.index(self.risk)

    def __str__(self) -> str:
        return self.name


def parse_channel(text: str, default_track: str | None = None) -> Channel:
    """Parse ``risk``, ``track``, ``track/risk``, ``risk/branch`` or ``track/risk/branch``.

    A missing track is ``default_track`` (the snap's default, else ``latest``).
    Raises :class:`ChannelError`.
    """
    default = default_track or DEFAULT_TRACK
    if not text or len(text) > 200:
        raise ChannelError(f"invalid channel {text!r}", field="channels")
    parts = text.split("/")
    track, risk, branch = default, "", ""
    if len(parts) == 1:
        if parts[0] in RISKS:
            risk = parts[0]
        else:
            track, risk = parts[0], "stable"
    elif len(parts) == 2:
        if parts[0] in RISKS:
            risk, branch = parts
        else:
            track, risk = parts
    elif len(parts) == 3:
        track, risk, branch = parts
    else:
        raise ChannelError(f"invalid channel {text!r}: too many '/'", field="channels")
    if risk not in RISKS:
        raise ChannelError(
            f"invalid channel {text!r}: risk must be one of {', '.join(RISKS)}", field="channels"
        )
    if not (len(track) <= _MAX_TRACK and _TRACK_RE.fullmatch(track)):
        raise ChannelError(f"invalid channel {text!r}: bad track name", field="channels")
    if branch and not (len(branch) <= _MAX_BRANCH and _BRANCH_RE.fullmatch(branch)):
        raise ChannelError(f"invalid channel {text!r}: bad branch name", field="channels")
    return Channel(track, risk, branch)


def fallback_chain(channel: Channel) -> list[Channel]:
    """Where a device tracking ``channel`` looks, in order, while channels are closed.

    A branch falls back to its risk; a closed risk to the next more stable one
    of the same track (edge -> beta -> candidate -> stable).
    """
    chain = [channel] if channel.branch else []
    chain += [Channel(channel.track, r) for r in reversed(RISKS[: channel.risk_level + 1])]
    return chain
