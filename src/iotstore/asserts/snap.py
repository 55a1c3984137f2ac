"""The snap family: ``snap-declaration``, ``snap-revision``, ``snap-developer``, ``snap-build``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

from . import _checks
from ._base import Assertion, AssertionType, Ref, register
from ._headers import HeaderValue
from ._names import NameRule
from ._quote import q
from .errors import CheckError, DecodeError, NotFoundError

if TYPE_CHECKING:
    from ._dbview import DatabaseView
    from .account import AccountKey

__all__ = [
    "DEFAULT_PROVENANCE",
    "DeveloperRange",
    "RevisionAuthority",
    "SnapBuild",
    "SnapDeclaration",
    "SnapDeveloper",
    "SnapRevision",
]

DEFAULT_PROVENANCE = "global-upload"
SERIES = "16"
_ALIAS_RE = re.compile(r"[a-zA-Z0-9][-_.a-zA-Z0-9]*")  # naming.ValidAlias
_APP_RE = NameRule("[a-zA-Z0-9](?:-?[a-zA-Z0-9])*", "[a-zA-Z0-9][-a-zA-Z0-9]*")  # naming.ValidApp


def _snap_revision(m: _checks.M, name: str, what: str = "header") -> int:
    number = _checks.mandatory_int(m, name, what)
    if number < 1:
        raise DecodeError(f'"{name}" {what} must be >=1: {number}', name)
    return number


@dataclass(frozen=True, slots=True)
class RevisionAuthority:
    """An account allowed to sign revisions of a snap with given provenances."""

    account_id: str
    provenances: tuple[str, ...]
    min_revision: int
    max_revision: int | None

    def allows(self, authority_id: str, provenance: str, revision: int) -> bool:
        """Whether this entry covers a revision (device scope is checked at install time)."""
        return (
            self.account_id == authority_id
            and provenance in self.provenances
            and revision >= self.min_revision
            and (self.max_revision is None or revision <= self.max_revision)
        )


def _revision_authorities(headers: _checks.M) -> tuple[RevisionAuthority, ...]:
    if "revision-authority" not in headers:
        return ()
    value = headers["revision-authority"]
    if isinstance(value, str) or not isinstance(value, tuple):
        raise DecodeError("revision-authority stanza must be a list of maps", "revision-authority")
    if not value:
        raise DecodeError("revision-authority stanza cannot be empty", "revision-authority")
    result: list[RevisionAuthority] = []
    with _checks.within("revision-authority"):
        for item in value:
            if isinstance(item, str | tuple):
                raise DecodeError("revision-authority stanza must be a list of maps")
            result.append(_revision_authority(item))
    return tuple(result)


def _revision_authority(item: _checks.M) -> RevisionAuthority:
    account_id = _checks.string_matches(
        item, "account-id", _checks.ACCOUNT_ID_RE, "in revision authority"
    )
    provenances = _checks.string_list(
        item, "provenance", _checks.PROVENANCE_RE, "provenance in revision authority"
    )
    if not provenances:
        raise DecodeError("provenance in revision authority cannot be empty")
    low = (
        _snap_revision(item, "min-revision", "in revision authority")
        if ("min-revision" in item)
        else 1
    )
    high = (
        _snap_revision(item, "max-revision", "in revision authority")
        if ("max-revision" in item)
        else None
    )
    if high is not None and high < low:
        raise DecodeError(
            "optional max-revision cannot be less than min-revision in revision-authority"
        )
    for scope in ("on-store", "on-brand", "on-model"):
        _checks.string_list(item, scope, what=f"{scope} in revision-authority")
    return RevisionAuthority(account_id, provenances, low, high)


def _check_aliases(headers: _checks.M) -> None:
    """snapd's checkAliases: a list of {name, target} maps, names unique."""
    if "aliases" not in headers:
        return
    value = headers["aliases"]
    wrong = '"aliases" header must be a list of alias maps'
    if not isinstance(value, tuple):
        raise DecodeError(wrong, "aliases")
    seen: set[str] = set()
    with _checks.within("aliases"):
        for i, entry in enumerate(value, 1):
            if isinstance(entry, str | tuple):
                raise DecodeError(wrong)
            name = _checks.string_matches(entry, "name", _ALIAS_RE, f'in "aliases" item {i}')
            _checks.string_matches(entry, "target", _APP_RE, f"for alias {q(name)}")
            if name in seen:
                raise DecodeError(f'duplicated definition in "aliases" for alias {q(name)}')
            seen.add(name)


# Interface-rule features and the snap-declaration format that introduced them
# (snapd's snapDeclarationFormatAnalyze).
_FORMAT_DOLLAR_ATTRS = 2  # $SLOT()/$PLUG()/$MISSING in attribute constraints
_FORMAT_DEVICE_SCOPE = 3  # on-store/on-brand/on-model
_FORMAT_NAME_CONSTRAINTS = 4  # plug-names/slot-names
_FORMAT_ALT_MATCHERS = 5  # lists of alternatives inside attribute constraints
_SUBRULES = (
    "allow-installation",
    "deny-installation",
    "allow-connection",
    "deny-connection",
    "allow-auto-connection",
    "deny-auto-connection",
)


def _attr_matcher_format(constraint: HeaderValue) -> int:
    """The format an attribute constraint needs (constraint.go compileAttrMatcher)."""
    if isinstance(constraint, str):
        return _FORMAT_DOLLAR_ATTRS if constraint.startswith("$") else 0
    if isinstance(constraint, tuple):
        inner = max((_attr_matcher_format(c) for c in constraint), default=0)
        return max(_FORMAT_ALT_MATCHERS, inner)
    return max((_attr_matcher_format(c) for c in constraint.values()), default=0)


def _constraints_format(side: str, subrule: str, constraints: _checks.M) -> int:
    """The format one {allow,deny}-* constraints map needs (ifacedecls.go features)."""
    other = "slot" if side == "plug" else "plug"
    sides = (side,) if subrule.endswith("-installation") else (side, other)
    needed = 0
    if any(scope in constraints for scope in ("on-store", "on-brand", "on-model")):
        needed = _FORMAT_DEVICE_SCOPE
    if any(f"{s}-names" in constraints for s in sides):
        needed = max(needed, _FORMAT_NAME_CONSTRAINTS)
    for s in sides:
        attrs = constraints.get(f"{s}-attributes")
        if attrs is not None:
            needed = max(needed, _attr_matcher_format(attrs))
    return needed


def _rules_format(side: str, rules: _checks.M) -> int:
    """The format the interface rules of one side ("plug" or "slot") need."""
    needed = 0
    for rule in rules.values():
        if not isinstance(rule, Mapping):
            continue  # the 'true'/'false' shortcuts use no feature
        for subrule in _SUBRULES:
            value = rule.get(subrule)
            alternatives = value if isinstance(value, tuple) else (value,)
            for constraints in alternatives:
                if isinstance(constraints, Mapping):
                    needed = max(needed, _constraints_format(side, subrule, constraints))
    return needed


@register
@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class SnapDeclaration(Assertion):
    """A snap's identity (id, name, publisher) and policy, issued by the store's authority.

    Interface rules in ``plugs``/``slots`` are kept verbatim; only their shape
    (maps) is checked here: devices evaluate them.
    """

    TYPE: ClassVar[AssertionType] = AssertionType(
        "snap-declaration", ("series", "snap-id"), max_format=5
    )

    series: str
    snap_id: str
    snap_name: str
    publisher_id: str
    revision_authorities: tuple[RevisionAuthority, ...]
    signed_on: datetime

    @classmethod
    def _fields_from_headers(cls, headers: _checks.M, body: bytes) -> dict[str, object]:
        fields: dict[str, object] = {
            "series": _checks.not_empty_string(headers, "series"),
            "snap_id": _checks.not_empty_string(headers, "snap-id"),
            "snap_name": _checks.exists_string(headers, "snap-name"),
            "publisher_id": _checks.not_empty_string(headers, "publisher-id"),
            "signed_on": _checks.rfc3339(headers, "timestamp"),
        }
        _checks.string_list(headers, "refresh-control")
        _checks.optional_map(headers, "plugs")
        _checks.optional_map(headers, "slots")
        _checks.string_list(headers, "auto-aliases", _ALIAS_RE)
        _check_aliases(headers)
        fields["revision_authorities"] = _revision_authorities(headers)
        return fields

    @classmethod
    def suggest_format(cls, headers: _checks.M) -> int:
        """Interface rules need format 1, later rule features 2 to 5 (snapd's analyzer).

        Like snapd, any ``plugs`` or ``slots`` header, even an empty map, needs
        format 1. The rules themselves are kept verbatim and not compiled, so
        only the features of well-formed rules are recognised.
        """
        if "plugs" not in headers and "slots" not in headers:
            return 0
        needed = 1
        for side in ("plug", "slot"):
            rules = _checks.optional_map(headers, f"{side}s")
            if rules is not None:
                needed = max(needed, _rules_format(side, rules))
        return needed

    @property
    def timestamp(self) -> datetime:
        """The ``timestamp`` header."""
        return self.signed_on

    def prerequisites(self) -> tuple[Ref, ...]:
        """The publisher's account."""
        return (Ref("account", (self.publisher_id,)),)

    def check_consistency(self, db: DatabaseView, signing_key: AccountKey | None) -> None:
        """Issued by a trusted authority, for a known publisher."""
        what = f"snap-declaration assertion for {q(self.snap_name)} (id {q(self.snap_id)})"
        if not db.is_trusted_account(self.authority_id):
            raise CheckError(
                f"{what} is not signed by a directly trusted authority: {self.authority_id}"
            )
        try:
            db.find("account", (self.publisher_id,))
        except NotFoundError as e:
            raise CheckError(
                f"{what} does not have a matching account assertion for the publisher "
                f"{q(self.publisher_id)}"
            ) from e


@register
@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class SnapRevision(Assertion):
    """One uploaded file of a snap: digest, size, revision number, developer."""

    TYPE: ClassVar[AssertionType] = AssertionType(
        "snap-revision",
        ("snap-sha3-384", "provenance"),
        optional_primary_key_defaults={"provenance": DEFAULT_PROVENANCE},
    )

    snap_sha3_384: str
    provenance: str
    snap_id: str
    snap_size: int
    snap_revision: int
    developer_id: str
    signed_on: datetime

    @classmethod
    def _fields_from_headers(cls, headers: _checks.M, body: bytes) -> dict[str, object]:
        _checks.digest(headers, "snap-sha3-384")
        return {
            "snap_sha3_384": _checks.not_empty_string(headers, "snap-sha3-384"),
            "provenance": _checks.string_matches(headers, "provenance", _checks.PROVENANCE_RE),
            "snap_id": _checks.not_empty_string(headers, "snap-id"),
            "snap_size": _checks.uint64(headers, "snap-size"),
            "snap_revision": _snap_revision(headers, "snap-revision"),
            "developer_id": _checks.not_empty_string(headers, "developer-id"),
            "signed_on": _checks.rfc3339(headers, "timestamp"),
        }

    @property
    def timestamp(self) -> datetime:
        """The ``timestamp`` header."""
        return self.signed_on

    def prerequisites(self) -> tuple[Ref, ...]:
        """The snap's declaration and the developer's account."""
        return (
            Ref("snap-declaration", (SERIES, self.snap_id)),
            Ref("account", (self.developer_id,)),
        )

    def check_consistency(self, db: DatabaseView, signing_key: AccountKey | None) -> None:
        """Store-signed for ``global-upload``; otherwise a revision authority of the declaration."""
        delegated = self.provenance != DEFAULT_PROVENANCE
        if not delegated and not db.is_trusted_account(self.authority_id):
            raise CheckError(
                f"snap-revision assertion for snap id {q(self.snap_id)} is not signed by a store: "
                f"{self.authority_id}"
            )
        try:
            db.find("account", (self.developer_id,))
        except NotFoundError as e:
            raise CheckError(
                f"snap-revision assertion for snap id {q(self.snap_id)} does not have a matching "
                f"account assertion for the developer {q(self.developer_id)}"
            ) from e
        try:
            decl = db.find("snap-declaration", (SERIES, self.snap_id))
        except NotFoundError as e:
            raise CheckError(
                f"snap-revision assertion for snap id {q(self.snap_id)} does not have a matching "
                "snap-declaration assertion"
            ) from e
        if delegated:
            assert isinstance(decl, SnapDeclaration)
            if not any(
                ra.allows(self.authority_id, self.provenance, self.snap_revision)
                for ra in decl.revision_authorities
            ):
                raise CheckError(
                    f"snap-revision assertion with provenance {q(self.provenance)} for snap id "
                    f"{q(self.snap_id)} is not signed by an authorized authority: "
                    f"{self.authority_id}"
                )


@dataclass(frozen=True, slots=True)
class DeveloperRange:
    """One collaborator entry: ``since == until`` revokes the developer."""

    developer_id: str
    since: datetime
    until: datetime | None


def _developers(headers: _checks.M) -> tuple[DeveloperRange, ...]:
    if "developers" not in headers:
        return ()
    value = headers["developers"]
    wrong = '"developers" must be a list of developer maps'
    if not isinstance(value, tuple):
        raise DecodeError(wrong, "developers")
    revoked: dict[str, bool] = {}
    result: list[DeveloperRange] = []
    with _checks.within("developers"):
        for i, item in enumerate(value, 1):
            if isinstance(item, str | tuple):
                raise DecodeError(wrong)
            account_id = _checks.string_matches(
                item, "developer-id", _checks.ACCOUNT_ID_RE, f'in "developers" item {i}'
            )
            what = f'in "developers" item {i} for developer {q(account_id)}'
            since = _checks.rfc3339(item, "since", what)
            until = _checks.optional_rfc3339(item, "until", what)
            if until is not None and since > until:
                raise DecodeError(f'"since" {what} must be less than or equal to "until"')
            is_revocation = until == since
            if account_id in revoked and (revoked[account_id] or is_revocation):
                raise DecodeError(
                    f"revocation for developer {q(account_id)} must be standalone but found "
                    'other "developers" items'
                )
            revoked.setdefault(account_id, is_revocation)
            result.append(DeveloperRange(account_id, since, until))
    return tuple(result)


@register
@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class SnapDeveloper(Assertion):
    """The collaborators of a snap under one publisher."""

    TYPE: ClassVar[AssertionType] = AssertionType("snap-developer", ("snap-id", "publisher-id"))

    snap_id: str
    publisher_id: str
    developers: tuple[DeveloperRange, ...]

    @classmethod
    def _fields_from_headers(cls, headers: _checks.M, body: bytes) -> dict[str, object]:
        return {
            "snap_id": _checks.not_empty_string(headers, "snap-id"),
            "publisher_id": _checks.not_empty_string(headers, "publisher-id"),
            "developers": _developers(headers),
        }

    def _developer_ids(self) -> list[str]:
        seen: dict[str, None] = {}
        for d in self.developers:
            if d.developer_id != self.publisher_id:
                seen[d.developer_id] = None
        return list(seen)

    def prerequisites(self) -> tuple[Ref, ...]:
        """The declaration, the publisher's and every developer's account."""
        return (
            Ref("snap-declaration", (SERIES, self.snap_id)),
            Ref("account", (self.publisher_id,)),
            *(Ref("account", (d,)) for d in self._developer_ids()),
        )

    def check_consistency(self, db: DatabaseView, signing_key: AccountKey | None) -> None:
        """Signed by the publisher or a trusted authority; everything referenced is known."""
        if not db.is_trusted_account(self.authority_id) and self.publisher_id != self.authority_id:
            raise CheckError(
                "snap-developer must be signed by the publisher or a trusted authority but got "
                f"authority {q(self.authority_id)} and publisher {q(self.publisher_id)}"
            )
        try:
            db.find("snap-declaration", (SERIES, self.snap_id))
        except NotFoundError as e:
            raise CheckError(
                f"snap-developer assertion for snap id {q(self.snap_id)} does not have a matching "
                "snap-declaration assertion"
            ) from e
        for role, account_id in [("publisher", self.publisher_id)] + [
            ("developer", d) for d in self._developer_ids()
        ]:
            try:
                db.find("account", (account_id,))
            except NotFoundError as e:
                raise CheckError(
                    f"snap-developer assertion for snap-id {q(self.snap_id)} does not have a "
                    f"matching account assertion for the {role} {q(account_id)}"
                ) from e


@register
@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class SnapBuild(Assertion):
    """A developer's statement that they built a snap file (``snap sign-build``)."""

    TYPE: ClassVar[AssertionType] = AssertionType("snap-build", ("snap-sha3-384",))

    snap_sha3_384: str
    snap_id: str
    snap_size: int
    grade: str
    signed_on: datetime

    @classmethod
    def _fields_from_headers(cls, headers: _checks.M, body: bytes) -> dict[str, object]:
        _checks.digest(headers, "snap-sha3-384")
        grade = _checks.not_empty_string(headers, "grade")
        if grade not in ("stable", "devel"):
            raise DecodeError('"grade" header must be either "stable" or "devel"', "grade")
        return {
            "snap_sha3_384": _checks.not_empty_string(headers, "snap-sha3-384"),
            "snap_id": _checks.not_empty_string(headers, "snap-id"),
            "snap_size": _checks.uint64(headers, "snap-size"),
            "grade": grade,
            "signed_on": _checks.rfc3339(headers, "timestamp"),
        }

    @property
    def timestamp(self) -> datetime:
        """The ``timestamp`` header."""
        return self.signed_on
