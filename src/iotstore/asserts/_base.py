"""The assertion base class, assertion types and the type registry."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, ClassVar, Self, TypeVar

from . import _checks
from ._headers import HeaderValue
from ._quote import q
from .errors import DecodeError

if TYPE_CHECKING:
    from ._dbview import DatabaseView
    from .account import AccountKey
    from .keys import PublicKey

__all__ = ["Assertion", "AssertionType", "GenericAssertion", "Ref", "lookup_type", "type_names"]

EMPTY_HEADERS: Mapping[str, HeaderValue] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class AssertionType:
    """What snapd's type table says of one assertion type."""

    name: str
    primary_key: tuple[str, ...]
    optional_primary_key_defaults: Mapping[str, str] = field(default_factory=dict)
    no_authority: bool = False
    sequence_forming: bool = False
    max_format: int = 0
    timestamped: bool = False

    def acceptable_primary_key(self, key: tuple[str, ...]) -> bool:
        """Whether ``key`` has a usable length (optional trailing keys may be left out)."""
        n = len(self.primary_key)
        return n - len(self.optional_primary_key_defaults) <= len(key) <= n

    def complete_primary_key(self, key: tuple[str, ...]) -> tuple[str, ...]:
        """Fill in defaults for trailing optional primary keys."""
        if not self.acceptable_primary_key(key):
            raise DecodeError(f"primary key has wrong length for {q(self.name)} assertion")
        rest = tuple(self.optional_primary_key_defaults[k] for k in self.primary_key[len(key) :])
        full = key + rest
        for name, value in zip(self.primary_key, full, strict=True):
            if not value or "/" in value:
                raise DecodeError(f"primary key {q(name)} header cannot be empty or contain '/'")
        return full


@dataclass(frozen=True, slots=True)
class Ref:
    """A reference to an assertion: its type name and full primary key."""

    type_name: str
    primary_key: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.type_name} ({'/'.join(self.primary_key)})"


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Assertion:
    """A decoded or freshly signed assertion, immutable, holding its exact bytes.

    Get one from :func:`iotstore.asserts.decode`, :func:`~iotstore.asserts.decode_stream`
    or :func:`~iotstore.asserts.sign`; signatures are checked separately (by a
    :class:`~iotstore.asserts.Database` or :func:`~iotstore.asserts.verify_signature`).
    """

    TYPE: ClassVar[AssertionType]

    headers: Mapping[str, HeaderValue]
    body: bytes
    content: bytes
    signature: bytes
    format: int
    revision: int

    # -- construction ---------------------------------------------------------

    @classmethod
    def assemble(
        cls,
        headers: Mapping[str, HeaderValue],
        body: bytes,
        content: bytes,
        signature: bytes,
        format_: int,
        revision: int,
    ) -> Self:
        """Build the typed assertion, running the family's header checks."""
        frozen = MappingProxyType(dict(headers))
        return cls(
            headers=frozen,
            body=body,
            content=content,
            signature=signature,
            format=format_,
            revision=revision,
            **cls._fields_from_headers(frozen, body),
        )

    @classmethod
    def _fields_from_headers(cls, headers: _checks.M, body: bytes) -> dict[str, object]:
        """Check the family's headers and return its typed fields (override per type)."""
        del headers, body
        return {}

    @classmethod
    def suggest_format(cls, headers: _checks.M) -> int:
        """The lowest format covering the features ``headers`` use (snapd's SuggestFormat).

        The signer refuses a lower ``format``. Families with features added
        in later formats override this; raise DecodeError for malformed input.
        """
        del headers
        return 0

    # -- common accessors -----------------------------------------------------

    @property
    def type_name(self) -> str:
        """The ``type`` header."""
        value = self.headers["type"]
        assert isinstance(value, str)
        return value

    @property
    def authority_id(self) -> str:
        """The ``authority-id`` header ('' for self-signed request types)."""
        value = self.headers.get("authority-id", "")
        return value if isinstance(value, str) else ""

    @property
    def sign_key_id(self) -> str:
        """The ``sign-key-sha3-384`` header."""
        value = self.headers["sign-key-sha3-384"]
        assert isinstance(value, str)
        return value

    @property
    def primary_key(self) -> tuple[str, ...]:
        """Values of the type's primary-key headers, defaults filled in."""
        t = self.TYPE
        out: list[str] = []
        for name in t.primary_key:
            value = self.headers.get(name, t.optional_primary_key_defaults.get(name, ""))
            assert isinstance(value, str)
            out.append(value)
        return tuple(out)

    @property
    def ref(self) -> Ref:
        """The reference that finds this assertion again."""
        return Ref(self.type_name, self.primary_key)

    @property
    def timestamp(self) -> datetime | None:
        """The ``timestamp`` header for timestamped types, else ``None``."""
        return None

    def header(self, name: str) -> HeaderValue | None:
        """Any header's value, or ``None`` when absent."""
        return self.headers.get(name)

    def header_str(self, name: str) -> str:
        """A string header's value, or '' when absent or not a string."""
        value = self.headers.get(name)
        return value if isinstance(value, str) else ""

    def to_bytes(self) -> bytes:
        """The assertion exactly as received or signed: content, blank line, signature."""
        return self.content + b"\n\n" + self.signature

    # -- hooks for the trust database ------------------------------------------

    def prerequisites(self) -> tuple[Ref, ...]:
        """Assertions that must be in the database before this one can be added."""
        return ()

    def self_signing_key(self) -> PublicKey | None:
        """For self-signed types: the key that must have made the signature."""
        return None

    def check_consistency(self, db: DatabaseView, signing_key: AccountKey | None) -> None:
        """Type-specific rules checked when the assertion is added (raise CheckError)."""
        del db, signing_key

    # -- value semantics: the bytes are the identity ---------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Assertion):
            return NotImplemented
        return self.content == other.content and self.signature == other.signature

    def __hash__(self) -> int:
        return hash((self.content, self.signature))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.ref} rev {self.revision}>"


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class GenericAssertion(Assertion):
    """An assertion of a type this library does not model: kept, never trusted."""

    TYPE: ClassVar[AssertionType] = AssertionType("", ())

    @property
    def primary_key(self) -> tuple[str, ...]:
        """Unknown types have no known primary key."""
        return ()


_REGISTRY: dict[str, type[Assertion]] = {}


_A = TypeVar("_A", bound=type[Assertion])


def _short_repr(cls: _A) -> _A:
    """Give an assertion class the short ``<Type ref rev N>`` repr.

    dataclass() writes a field-by-field repr per subclass; bodies and
    signatures make that unreadable in logs, so every class shares the short one.
    """
    cls.__repr__ = Assertion.__repr__  # type: ignore[method-assign]
    return cls


def register(cls: _A) -> _A:
    """Class decorator adding a family class to the type registry."""
    t = cls.TYPE
    if t.name in _REGISTRY:
        raise RuntimeError(f"assertion type {q(t.name)} registered twice")
    _REGISTRY[t.name] = cls
    return _short_repr(cls)


# Unknown types are decoded into GenericAssertion but are not a registered type.
_short_repr(GenericAssertion)


def lookup_type(name: str) -> type[Assertion] | None:
    """The class registered for a type name, or ``None``."""
    return _REGISTRY.get(name)


def type_names() -> list[str]:
    """Sorted names of the known assertion types."""
    return sorted(_REGISTRY)
