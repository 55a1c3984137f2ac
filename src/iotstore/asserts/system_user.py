"""The ``system-user`` assertion: a local user a brand may create on its devices."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from . import _checks, _golang
from ._base import Assertion, AssertionType, register
from ._quote import q
from .errors import DecodeError

__all__ = ["SystemUser"]

# snapd 2.57.6's pattern; ".-_" inside the class is a character range, kept as is
_USERNAME_RE = re.compile(r"[a-z0-9][-a-z0-9+.-_]*")
_SALT_HASH_RE = re.compile(r"[a-zA-Z0-9./]+")  # crypt(3)'s alphabet, snapd's isValidSaltAndHash


def _check_email(headers: _checks.M) -> str:
    """A mandatory address that Go's net/mail.ParseAddress accepts (snapd's rule)."""
    email = _checks.not_empty_string(headers, "email")
    try:
        _golang.parse_address(email)
    except _golang.GoError as e:
        raise DecodeError(
            f'"email" header must be a RFC 5322 compliant email address: {e}', "email"
        ) from e
    return email


def _check_password(headers: _checks.M) -> str:
    """snapd's checkHashedPassword: a crypt(3) "$id$[rounds=N$]salt$hash" line or ''."""
    password = _checks.optional_string(headers, "password") or ""
    if not password:
        return ""
    fields = password.split("$", 4)
    if len(fields) not in (4, 5):
        raise DecodeError(
            '"password" header invalid: hashed password must be of the form '
            '"$integer-id$salt$hash", see crypt(3)',
            "password",
        )
    if len(fields) == 4 and fields[2].startswith("rounds="):
        raise DecodeError('"password" header invalid: missing hash field', "password")
    if len(fields) == 4:
        ident, rounds, salt, digest = fields[1], "", fields[2], fields[3]
    else:
        ident, rounds, salt, digest = fields[1], fields[2], fields[3], fields[4]
    try:
        id_number = _golang.atoi(ident)
    except _golang.AtoiError as e:
        raise DecodeError(
            f'"password" header must start with "$integer-id$", got {q(ident)}', "password"
        ) from e
    if id_number < 6:
        raise DecodeError(
            '"password" header only supports $id$ values of 6 (sha512crypt) or higher', "password"
        )
    if rounds.startswith("rounds="):
        try:
            count = _golang.atoi(rounds.split("=", 1)[1])
        except _golang.AtoiError as e:
            raise DecodeError(
                f'"password" header has invalid number of rounds: {e}', "password"
            ) from e
        if not 5000 <= count <= 999999999:
            raise DecodeError(
                f'"password" header rounds parameter out of bounds: {count}', "password"
            )
    for what, value in (("salt", salt), ("hash", digest)):
        if not _SALT_HASH_RE.fullmatch(value):
            raise DecodeError(
                f'"password" header has invalid chars in {what} {q(value)}', "password"
            )
    return password


def _add_year(when: datetime) -> datetime:
    """One calendar year later; 29 February rolls over to 1 March as Go's AddDate does."""
    try:
        return when.replace(year=when.year + 1)
    except ValueError:
        return when.replace(year=when.year + 1, month=3, day=1)


@register
@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class SystemUser(Assertion):
    """A user account that devices of the listed models may create (``snap create-user``)."""

    TYPE: ClassVar[AssertionType] = AssertionType(
        "system-user", ("brand-id", "email"), max_format=1
    )

    brand_id: str
    email: str
    username: str
    name: str | None
    password: str | None
    force_password_change: bool
    series: tuple[str, ...]
    models: tuple[str, ...]
    serials: tuple[str, ...]
    ssh_keys: tuple[str, ...]
    since: datetime
    until: datetime

    @classmethod
    def suggest_format(cls, headers: _checks.M) -> int:
        """``serials`` came with format 1 (snapd's systemUserFormatAnalyze)."""
        return 1 if _checks.string_list(headers, "serials") else 0

    @classmethod
    def _fields_from_headers(cls, headers: _checks.M, body: bytes) -> dict[str, object]:
        # brand-id may differ from authority-id: the model's system-user-authority decides.
        brand_id = _checks.not_empty_string(headers, "brand-id")
        email = _check_email(headers)
        series = _checks.string_list(headers, "series")
        models = _checks.string_list(headers, "models")
        serials = _checks.string_list(headers, "serials")
        fmt = _checks.iteration(headers, "format")
        if serials and fmt < 1:
            raise DecodeError(
                'the "serials" header is only supported for format 1 or greater', "serials"
            )
        if serials and len(models) != 1:
            raise DecodeError(
                'in the presence of the "serials" header "models" must specify exactly one model',
                "models",
            )
        name = _checks.optional_string(headers, "name")
        username = _checks.string_matches(headers, "username", _USERNAME_RE)
        password = _check_password(headers)
        force = _checks.optional_bool(headers, "force-password-change")
        if force and not password:
            raise DecodeError(
                'cannot use "force-password-change" with an empty "password"',
                "force-password-change",
            )
        ssh_keys = _checks.string_list(headers, "ssh-keys")
        since = _checks.rfc3339(headers, "since")
        until = _checks.rfc3339(headers, "until")
        if until < since:
            raise DecodeError("'until' time cannot be before 'since' time", "until")
        if not models and until > _add_year(since):
            raise DecodeError(
                "'until' time cannot be more than 365 days in the future when no models are "
                "specified",
                "until",
            )
        return {
            "brand_id": brand_id,
            "email": email,
            "username": username,
            "name": name,
            "password": password or None,
            "force_password_change": force,
            "series": series,
            "models": models,
            "serials": serials,
            "ssh_keys": ssh_keys,
            "since": since,
            "until": until,
        }
