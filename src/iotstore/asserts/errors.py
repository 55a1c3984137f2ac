"""The one error hierarchy of :mod:`iotstore.asserts`.

Every failure the library reports is an :class:`AssertsError`; callers that
only need "valid or not" catch that. The subclasses say which stage refused
the input, and each carries a message fit to show a user.
"""

from __future__ import annotations

__all__ = [
    "AssertsError",
    "CheckError",
    "DecodeError",
    "InvalidKeyError",
    "NotFoundError",
    "RevisionError",
    "SignatureError",
    "SigningError",
    "UnsupportedFormatError",
]


class AssertsError(Exception):
    """Root of every error raised by :mod:`iotstore.asserts`."""


class DecodeError(AssertsError):
    """The text is not a well-formed assertion (grammar, mandatory or malformed header).

    ``header`` names the offending header when there is one.
    """

    def __init__(self, message: str, header: str | None = None) -> None:
        super().__init__(message)
        self.header = header


class InvalidKeyError(AssertsError):
    """A public or private key could not be decoded or is unusable."""


class SignatureError(AssertsError):
    """A signature is malformed or does not verify."""


class SigningError(AssertsError):
    """Headers given to the signer do not make a valid assertion."""


class CheckError(AssertsError):
    """The assertion is well formed and signed but the database refuses it."""


class UnsupportedFormatError(CheckError):
    """The assertion's ``format`` is newer than this library understands."""


class RevisionError(CheckError):
    """A revision equal to or older than the stored one was offered."""

    def __init__(self, message: str, used: int, current: int) -> None:
        super().__init__(message)
        self.used = used
        self.current = current


class NotFoundError(AssertsError):
    """No assertion with the requested type and primary key."""

    def __init__(self, type_name: str, primary_key: tuple[str, ...]) -> None:
        super().__init__(f"{type_name} assertion not found: {'/'.join(primary_key)}")
        self.type_name = type_name
        self.primary_key = primary_key
