"""The ``model`` assertion: what a device image contains and which store it uses."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from . import _checks
from ._base import Assertion, AssertionType, register
from ._headers import HeaderValue
from ._quote import q
from .errors import DecodeError
from .serial import check_model_name

__all__ = ["WELL_KNOWN_SNAP_IDS", "Model", "ModelSnap", "is_valid_snap_name"]

_SNAP_MODE_RE = re.compile(r"[a-z][-a-z]+")
_DISTRIBUTION_RE = re.compile(r"[a-z0-9._-]*")
SNAP_TYPES = ("app", "base", "gadget", "kernel", "core", "snapd")
GRADES = ("secured", "signed", "dangerous")
STORAGE_SAFETIES = ("encrypted", "prefer-encrypted", "prefer-unencrypted")
RISKS = ("stable", "candidate", "beta", "edge")
_ESSENTIAL_MODES = ("run", "ephemeral")
_DEFAULT_MODES = ("run",)
# snapd resolves a boot base that the snaps list leaves out through this table
# (Canonical's ids); a brand store lists its own base in "snaps" instead.
WELL_KNOWN_SNAP_IDS = {
    "core": "99T7MUlRhtI3U0QFgl5mXXESAiSwt776",
    "snapd": "PMrrV4ml8uWuEUDBT8dSGnKUYbevVhc4",
    "core18": "CSO04Jhav2yK0uz97cr0ipQRyqg0qQL6",
    "core20": "DLqre5XGLbDqg9jPtiAhRRjDuPVa5X1q",
    "core22": "amcUKQILKXHHTlmSa7NMdnXSx02dNeeT",
}


def is_valid_snap_name(name: str) -> bool:
    """snapd's snap-name rule: 2-40 of [a-z0-9-], a letter, no edge or double hyphen."""
    return 2 <= len(name) <= 40 and _checks.SNAP_NAME_RE.fullmatch(name)


@dataclass(frozen=True, slots=True)
class ModelSnap:
    """A snap a model lists (or implies, for the UC16/18 form)."""

    name: str
    snap_id: str | None
    type: str
    modes: tuple[str, ...]
    default_channel: str
    presence: str
    pinned_track: str | None = None

    @property
    def essential(self) -> bool:
        """Kernel, gadget, snapd and the boot base are essential."""
        return self.modes == _ESSENTIAL_MODES


def _parse_channel_verbatim(value: str) -> tuple[str, str, str]:
    """snapd's channel.ParseVerbatim: (track, risk, branch); raises ValueError with its text."""
    if not value:
        raise ValueError("channel name cannot be empty")
    parts = value.split("/")
    if len(parts) > 3:
        raise ValueError(f"channel name has too many components: {value}")
    track: str | None = None
    risk: str | None = None
    branch: str | None = None
    if len(parts) == 3:
        track, risk, branch = parts
    elif len(parts) == 2:
        if parts[0] in RISKS:
            risk, branch = parts
        else:
            track, risk = parts
    elif parts[0] in RISKS:
        risk = parts[0]
    else:
        track = parts[0]
    if risk is not None and risk not in RISKS:
        raise ValueError(f"invalid risk in channel name: {value}")
    if track == "":
        raise ValueError(f"invalid track in channel name: {value}")
    if branch == "":
        raise ValueError(f"invalid branch in channel name: {value}")
    return track or "", risk or "", branch or ""


def _check_default_channel(name: str, value: str) -> None:
    try:
        track, _, _ = _parse_channel_verbatim(value)
    except ValueError as e:
        raise DecodeError(f"invalid default channel for snap {q(name)}: {e}") from e
    if not track:
        raise DecodeError(f"default channel for snap {q(name)} must specify a track")


def _model_snap(entry: _checks.M, grade: str) -> ModelSnap:
    """snapd's checkModelSnap (errors name no header: the caller sets "snaps")."""
    name = _checks.not_empty_string(entry, "name", "of snap")
    if not is_valid_snap_name(name):
        raise DecodeError(f"invalid snap name {q(name)}")
    what = f"of snap {q(name)}"
    snap_id = None
    if "id" in entry:
        snap_id = _checks.string_matches(entry, "id", _checks.SNAP_ID_RE, what)
    elif grade != "dangerous":
        raise DecodeError(f'"id" {what} is mandatory for {grade} grade model')
    typ = _checks.optional_string(entry, "type", what) or "app"
    if typ not in SNAP_TYPES:
        raise DecodeError(f"type of snap {q(name)} must be one of {'|'.join(SNAP_TYPES)}")
    modes = _checks.string_list(entry, "modes", _SNAP_MODE_RE, f'"modes" {what}')
    channel = _checks.optional_string(entry, "default-channel", what) or "latest/stable"
    _check_default_channel(name, channel)
    presence = _checks.optional_string(entry, "presence", what) or ""
    if presence and presence not in ("required", "optional"):
        raise DecodeError(f"presence of snap {q(name)} must be one of required|optional")
    return ModelSnap(name, snap_id, typ, modes, channel, presence)


def _extended_snaps(headers: _checks.M, base: str, grade: str) -> list[ModelSnap]:
    """snapd's checkExtendedSnaps: every entry checked, then the cross-entry rules."""
    value = headers["snaps"]
    if not isinstance(value, tuple):
        raise DecodeError('"snaps" header must be a list of maps', "snaps")
    with _checks.within("snaps"):
        snaps, singles = _listed_snaps(value, base, grade)
    for kind in ("gadget", "kernel"):
        if kind not in singles:
            raise DecodeError(f'one "snaps" header entry must specify the model {kind}', "snaps")
    if base and all(snap.name != base for snap in snaps):
        snap_id = WELL_KNOWN_SNAP_IDS.get(base)
        if snap_id is None and grade != "dangerous":
            raise DecodeError(
                f'cannot specify not well-known base {q(base)} without a corresponding "snaps" '
                "header entry",
                "base",
            )
        snaps.insert(
            0, ModelSnap(base, snap_id, "base", _ESSENTIAL_MODES, "latest/stable", "required")
        )
    return snaps


def _listed_snaps(
    value: tuple[HeaderValue, ...], base: str, grade: str
) -> tuple[list[ModelSnap], dict[str, str]]:
    """The listed snaps with their modes settled, and the snapd/kernel/gadget snap names."""
    snaps: list[ModelSnap] = []
    names: set[str] = set()
    ids: dict[str, str] = {}
    singles: dict[str, str] = {}
    for item in value:
        if isinstance(item, str | tuple):
            raise DecodeError('"snaps" header must be a list of maps')
        snap = _model_snap(item, grade)
        if snap.name in names:
            raise DecodeError(f"cannot list the same snap {q(snap.name)} multiple times")
        names.add(snap.name)
        if snap.snap_id:
            if snap.snap_id in ids:
                raise DecodeError(
                    f"cannot specify the same snap id {q(snap.snap_id)} multiple times, "
                    f"specified for snaps {q(ids[snap.snap_id])} and {q(snap.name)}"
                )
            ids[snap.snap_id] = snap.name
        essential = snap.type in ("snapd", "kernel", "gadget") or snap.name == base
        if snap.type in ("snapd", "kernel", "gadget"):
            if snap.type in singles:
                raise DecodeError(
                    f"cannot specify multiple {snap.type} snaps: {q(singles[snap.type])} and "
                    f"{q(snap.name)}"
                )
            singles[snap.type] = snap.name
        elif snap.name == base and snap.type != "base":
            raise DecodeError(f'boot base {q(base)} must specify type "base", not {q(snap.type)}')
        modes: tuple[str, ...]
        if essential:
            if snap.modes or snap.presence:
                raise DecodeError(
                    "essential snaps are always available, cannot specify modes or presence "
                    f"for snap {q(snap.name)}"
                )
            modes = _ESSENTIAL_MODES
        else:
            modes = snap.modes or _DEFAULT_MODES
        snaps.append(
            ModelSnap(
                snap.name,
                snap.snap_id,
                snap.type,
                modes,
                snap.default_channel,
                snap.presence or "required",
            )
        )
    return snaps, singles


def _snap_with_track(headers: _checks.M, which: str) -> ModelSnap | None:
    if which not in headers:
        return None
    value = headers[which]
    if not isinstance(value, str):
        raise DecodeError(f'"{which}" header must be a string', which)
    name, _, track = value.partition("=")
    if not is_valid_snap_name(name):
        raise DecodeError(f'invalid snap name in "{which}" header: {name}', which)
    if "=" in value:
        if "/" in track:
            raise DecodeError(f'"{which}" channel selector must be a track name only', which)
        if track in RISKS:
            raise DecodeError(f'"{which}" channel selector must be a track name', which)
    return ModelSnap(name, None, which, _DEFAULT_MODES, "", "required", track or None)


def _authority_list(headers: _checks.M, name: str, brand_id: str, star: bool) -> tuple[str, ...]:
    if name not in headers:
        return (brand_id,)
    value = headers[name]
    if star and value == "*":
        return ("*",)
    message = (
        f"\"{name}\" header must be '*' or a list of account ids"
        if star
        else (f'"{name}" header must be a list of account ids')
    )
    if not isinstance(value, tuple):
        raise DecodeError(message, name)
    try:
        ids = _checks.string_list(headers, name, _checks.ACCOUNT_ID_RE)
    except DecodeError as e:
        raise DecodeError(message, name) from e
    return ids if brand_id in ids else (brand_id, *ids)


@register
@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Model(Assertion):
    """A device model, signed by its brand; UC16/18 and UC20+ (``snaps``) forms."""

    TYPE: ClassVar[AssertionType] = AssertionType("model", ("series", "brand-id", "model"))

    series: str
    brand_id: str
    model: str
    display_name: str | None
    architecture: str | None
    base: str | None
    store: str | None
    classic: bool
    grade: str | None
    storage_safety: str | None
    snaps: tuple[ModelSnap, ...]
    serial_authority: tuple[str, ...]
    system_user_authority: tuple[str, ...]
    signed_on: datetime

    @classmethod
    def _fields_from_headers(cls, headers: _checks.M, body: bytes) -> dict[str, object]:
        authority, brand = headers.get("authority-id"), headers.get("brand-id")
        if brand != authority:
            raise DecodeError(
                "authority-id and brand-id must match, model assertions are expected to be "
                f"signed by the brand: {q(authority)} != {q(brand)}",
                "brand-id",
            )
        assert isinstance(brand, str)
        model = check_model_name(headers)
        classic = _checks.optional_bool(headers, "classic")
        extended = "snaps" in headers
        if extended:
            for name in ("gadget", "kernel", "required-snaps"):
                if name in headers:
                    raise DecodeError(
                        f"cannot specify separate {q(name)} header once using the extended snaps "
                        "header",
                        name,
                    )
        else:
            for name, what in (("grade", "a grade"), ("storage-safety", "storage-safety")):
                if name in headers:
                    raise DecodeError(
                        f"cannot specify {what} for model without the extended snaps header", name
                    )
        if classic and not extended:
            for name in ("kernel", "base"):
                if name in headers:
                    raise DecodeError(
                        f"cannot specify a {name} with a non-extended classic model", name
                    )
        if classic and extended:
            try:
                _checks.string_matches(headers, "distribution", _DISTRIBUTION_RE)
            except DecodeError as e:
                raise DecodeError(
                    f"{e}, see distribution ID in os-release spec", "distribution"
                ) from e
        elif "distribution" in headers:
            raise DecodeError(
                "cannot specify distribution for model unless it is classic and has an extended "
                "snaps header",
                "distribution",
            )
        if extended:
            for name in ("architecture", "base"):
                _checks.not_empty_string(headers, name)
        elif classic:
            for name in ("architecture", "gadget"):
                _checks.optional_string(headers, name)
        else:
            for name in ("architecture", "gadget", "kernel"):
                _checks.not_empty_string(headers, name)
        base = _checks.optional_string(headers, "base") or ""
        if base and not is_valid_snap_name(base):
            raise DecodeError(f'invalid snap name in "base" header: {base}', "base")
        store = _checks.optional_string(headers, "store")
        display_name = _checks.optional_string(headers, "display-name")

        grade: str | None = None
        safety: str | None = None
        if extended:
            grade = _checks.optional_string(headers, "grade") or "signed"
            if grade not in GRADES:
                raise DecodeError(
                    f"grade for model must be {'|'.join(GRADES)}, not {q(grade)}", "grade"
                )
            safety = _checks.optional_string(headers, "storage-safety") or None
            if safety is not None and safety not in STORAGE_SAFETIES:
                raise DecodeError(
                    f"storage-safety for model must be {'|'.join(STORAGE_SAFETIES)}, "
                    f"not {q(safety)}",
                    "storage-safety",
                )
            if safety is None:
                safety = "encrypted" if grade == "secured" else "prefer-encrypted"
            if grade == "secured" and safety != "encrypted":
                raise DecodeError(
                    "secured grade model must not have storage-safety overridden, only "
                    '"encrypted" is valid',
                    "storage-safety",
                )
            snaps = _extended_snaps(headers, base, grade)
        else:
            snaps = []
            if base:
                snaps.append(ModelSnap(base, None, "base", _DEFAULT_MODES, "", "required"))
            for which in ("kernel", "gadget"):
                snap = _snap_with_track(headers, which)
                if snap is not None:
                    snaps.append(snap)
            for name in _checks.string_list(headers, "required-snaps"):
                if not is_valid_snap_name(name):
                    raise DecodeError(
                        f'invalid snap name in "required-snaps" header: {name}', "required-snaps"
                    )
                snaps.append(ModelSnap(name, None, "", _DEFAULT_MODES, "", "required"))

        return {
            "series": _checks.not_empty_string(headers, "series"),
            "brand_id": brand,
            "model": model,
            "display_name": display_name,
            "architecture": _checks.optional_string(headers, "architecture"),
            "base": base or None,
            "store": store or None,
            "classic": classic,
            "grade": grade,
            "storage_safety": safety,
            "snaps": tuple(snaps),
            "serial_authority": _authority_list(headers, "serial-authority", brand, star=False),
            "system_user_authority": _authority_list(
                headers, "system-user-authority", brand, star=True
            ),
            "signed_on": _checks.rfc3339(headers, "timestamp"),
        }

    @property
    def timestamp(self) -> datetime:
        """The ``timestamp`` header."""
        return self.signed_on

    def snap_of_type(self, snap_type: str) -> ModelSnap | None:
        """The model's gadget, kernel, snapd or base snap, when it names one."""
        return next((s for s in self.snaps if s.type == snap_type), None)
