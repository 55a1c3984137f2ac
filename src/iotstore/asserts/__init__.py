"""snapd's assertion format: grammar, OpenPGP subset, typed families, signing and trust.

This package imports only the standard library and ``cryptography`` so it can
be used (and published) on its own. Assertions are frozen and keep the exact
bytes they were decoded from or signed as; verify them with a
:class:`Database` (full chain checks) or :func:`verify_signature`.
"""

from ._base import Assertion, AssertionType, GenericAssertion, Ref, lookup_type, type_names
from ._checks import ACCOUNT_ID_RE, KEY_NAME_RE, format_time, parse_time
from ._codec import (
    MAX_BODY_SIZE,
    MAX_HEADERS_SIZE,
    MAX_SIGNATURE_SIZE,
    MEDIA_TYPE,
    decode,
    decode_stream,
    encode_stream,
    sign,
    verify_signature,
)
from ._dbview import DatabaseView
from .account import Account, AccountKey, AccountKeyRequest
from .database import Backstore, Database, MemoryBackstore, revision_error
from .errors import (
    AssertsError,
    CheckError,
    DecodeError,
    InvalidKeyError,
    NotFoundError,
    RevisionError,
    SignatureError,
    SigningError,
    UnsupportedFormatError,
)
from .keys import PrivateKey, PublicKey, RSAPrivateKey, generate_rsa, load_pem_private_key
from .model import Model, ModelSnap
from .serial import DeviceSessionRequest, Serial, SerialRequest
from .snap import SnapBuild, SnapDeclaration, SnapDeveloper, SnapRevision
from .store import Store
from .system_user import SystemUser
from .validation_set import ValidationSet, ValidationSetSnap

__all__ = [
    "ACCOUNT_ID_RE",
    "KEY_NAME_RE",
    "MAX_BODY_SIZE",
    "MAX_HEADERS_SIZE",
    "MAX_SIGNATURE_SIZE",
    "MEDIA_TYPE",
    "Account",
    "AccountKey",
    "AccountKeyRequest",
    "Assertion",
    "AssertionType",
    "AssertsError",
    "Backstore",
    "CheckError",
    "Database",
    "DatabaseView",
    "DecodeError",
    "DeviceSessionRequest",
    "GenericAssertion",
    "InvalidKeyError",
    "MemoryBackstore",
    "Model",
    "ModelSnap",
    "NotFoundError",
    "PrivateKey",
    "PublicKey",
    "RSAPrivateKey",
    "Ref",
    "RevisionError",
    "Serial",
    "SerialRequest",
    "SignatureError",
    "SigningError",
    "SnapBuild",
    "SnapDeclaration",
    "SnapDeveloper",
    "SnapRevision",
    "Store",
    "SystemUser",
    "UnsupportedFormatError",
    "ValidationSet",
    "ValidationSetSnap",
    "decode",
    "decode_stream",
    "encode_stream",
    "format_time",
    "generate_rsa",
    "load_pem_private_key",
    "lookup_type",
    "parse_time",
    "revision_error",
    "sign",
    "type_names",
    "verify_signature",
]
