"""Shared checks of addresses and header values."""

from __future__ import annotations

from email.errors import HeaderParseError
from email.headerregistry import Address
from email.utils import getaddresses

from .errors import InvalidMail

__all__ = ["check_address", "check_sender"]

# Characters that would turn one address into several, or into a display-name
# form, or (line breaks) let the value add headers of its own.
_FORBIDDEN = frozenset('\r\n,;<>"()\\')


def check_address(value: str, what: str) -> str:
    """``value`` if it is one bare address (``local@domain``); raises :class:`InvalidMail`."""
    failure = InvalidMail(f"the {what} must be one plain email address")
    if not value or len(value) > 254 or value != value.strip() or _FORBIDDEN & set(value):
        raise failure
    try:
        address = Address(addr_spec=value)
    except (ValueError, IndexError, HeaderParseError) as e:  # the parser raises all three
        raise failure from e
    if not address.username or not address.domain or address.addr_spec != value:
        raise failure
    return value


def check_sender(value: str) -> tuple[str, str]:
    """``(From header, envelope address)`` of ``value``: ``addr`` or ``Name <addr>``.

    Raises :class:`InvalidMail` unless it is one address, with at most a display name.
    """
    if "\r" in value or "\n" in value:
        raise InvalidMail("the sender must be one email address, optionally with a name")
    found = getaddresses([value])
    if len(found) != 1 or not found[0][1]:
        raise InvalidMail("the sender must be one email address, optionally with a name")
    name, addr = found[0]
    check_address(addr, "sender")
    return (str(Address(display_name=name, addr_spec=addr)) if name else addr), addr
