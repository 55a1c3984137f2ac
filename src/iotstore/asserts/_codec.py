"""Decoding, encoding and signing of assertions and assertion streams."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import TypeVar

from . import _checks, _headers, _openpgp
from ._base import Assertion, AssertionType, GenericAssertion, lookup_type
from ._headers import HeaderValue
from ._quote import q
from .errors import DecodeError, SignatureError, SigningError
from .keys import PrivateKey, PublicKey

__all__ = [
    "MAX_BODY_SIZE",
    "MAX_HEADERS_SIZE",
    "MAX_SIGNATURE_SIZE",
    "MEDIA_TYPE",
    "decode",
    "decode_stream",
    "encode_stream",
    "sign",
    "verify_signature",
]

MEDIA_TYPE = "application/x.ubuntu.assertion"
MAX_HEADERS_SIZE = 128 * 1024
MAX_BODY_SIZE = 2 * 1024 * 1024
MAX_SIGNATURE_SIZE = 128 * 1024
_NLNL = b"\n\n"
_NLNL_Q = q("\n\n")  # snapd quotes the delimiter with %q
_T = TypeVar("_T")
_META = ("type", "format", "authority-id", "revision", "body-length", "sign-key-sha3-384")


def _parse_head(head: bytes) -> dict[str, HeaderValue]:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DecodeError("parsing assertion headers: header is not utf8") from e
    try:
        return _headers.parse(text)
    except DecodeError as e:
        raise DecodeError(f"parsing assertion headers: {e}", e.header) from e


def _assemble(
    headers: dict[str, HeaderValue], body: bytes, content: bytes, signature: bytes
) -> Assertion:
    """Check the meta headers and hand over to the family class (snapd's ``assemble``)."""
    length = _prefixed(lambda: _checks.int_with_default(headers, "body-length", 0))
    if length != len(body):
        raise DecodeError(
            f"assertion body length and declared body-length don't match: {len(body)} != {length}",
            "body-length",
        )
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DecodeError("assertion body is not utf8") from e
    _prefixed(lambda: _checks.digest(headers, "sign-key-sha3-384"))
    type_name = _prefixed(lambda: _checks.not_empty_string(headers, "type"))
    cls = lookup_type(type_name) or GenericAssertion
    t = cls.TYPE
    if cls is not GenericAssertion:
        if t.no_authority:
            _check_no_authority(type_name, headers)
        else:
            _prefixed(lambda: _check_authority(headers))
    format_ = _prefixed(lambda: _checks.iteration(headers, "format"))
    for name in t.primary_key:
        if name not in headers and name in t.optional_primary_key_defaults:
            headers[name] = t.optional_primary_key_defaults[name]
        try:
            _checks.primary_key(headers, name)
        except DecodeError as e:
            raise DecodeError(f"assertion {type_name}: {e}", e.header) from e
    revision = _prefixed(lambda: _checks.iteration(headers, "revision"))
    if not signature:
        raise DecodeError("empty assertion signature")
    try:
        return cls.assemble(headers, body, content, signature, format_, revision)
    except DecodeError as e:
        raise DecodeError(f"assertion {type_name}: {e}", e.header) from e


def _check_authority(headers: Mapping[str, HeaderValue]) -> None:
    """snapd's checkAuthority: authority-id, and signatory-id when present, are non-empty."""
    _checks.not_empty_string(headers, "authority-id")
    if "signatory-id" in headers:
        _checks.not_empty_string(headers, "signatory-id")


def _check_no_authority(type_name: str, headers: Mapping[str, HeaderValue]) -> None:
    """snapd's checkNoAuthority: self-signed types carry neither authority header."""
    for name in ("authority-id", "signatory-id"):
        if name in headers:
            raise DecodeError(f"{q(type_name)} assertion cannot have {name} set", name)


def _prefixed(check: Callable[[], _T]) -> _T:
    try:
        return check()
    except DecodeError as e:
        raise DecodeError(f"assertion: {e}", e.header) from e


def decode(data: bytes) -> Assertion:
    """Decode one serialized assertion (snapd's ``asserts.Decode``).

    Headers end at the first blank line, the signature starts after the last
    one. Raises :class:`DecodeError`; the signature is not verified here.
    """
    if len(data) > MAX_HEADERS_SIZE + MAX_BODY_SIZE + MAX_SIGNATURE_SIZE + 4:
        raise DecodeError("assertion exceeds the maximum assertion size")
    split = data.rfind(_NLNL)
    if split == -1:
        raise DecodeError("assertion content/signature separator not found")
    content, signature = data[:split], data[split + 2 :]
    head_end = content.find(_NLNL)
    if head_end == -1:
        head, body = content, b""
    else:
        head, body = content[:head_end], content[head_end + 2 :]
    if len(head) > MAX_HEADERS_SIZE:
        raise DecodeError("assertion headers exceed the maximum headers size")
    if len(body) > MAX_BODY_SIZE:
        raise DecodeError(f"assertion body length {len(body)} exceeds maximum body size")
    if len(signature) > MAX_SIGNATURE_SIZE:
        raise DecodeError("assertion signature exceeds the maximum signature size")
    return _assemble(_parse_head(head), body, content, signature)


def _read_until(data: bytes, pos: int, limit: int, what: str) -> tuple[bytes, int, bool]:
    """Bytes from ``pos`` through the next blank line (found) or to the end (not found)."""
    idx = data.find(_NLNL, pos, pos + limit + 2)
    if idx != -1:
        return data[pos : idx + 2], idx + 2, True
    if len(data) - pos > limit:
        raise DecodeError(f"{what}: maximum size exceeded while looking for delimiter {_NLNL_Q}")
    return data[pos:], len(data), False


def decode_stream(data: bytes) -> Iterator[Assertion]:
    """Decode a stream of assertions separated by blank lines (snapd's ``Decoder``).

    The body is read by ``body-length``, so bodies may hold blank lines.
    Raises :class:`DecodeError` at the first malformed member.
    """
    pos = 0
    while pos < len(data):
        head_and_sep, pos, found = _read_until(
            data, pos, MAX_HEADERS_SIZE, "error reading assertion headers"
        )
        if not found:
            raise DecodeError("unexpected EOF")
        head = head_and_sep[:-2]
        headers = _parse_head(head)
        try:
            length = _checks.int_with_default(headers, "body-length", 0)
        except DecodeError as e:
            raise DecodeError(f"assertion: {e}", e.header) from e
        if length > MAX_BODY_SIZE:
            raise DecodeError(f"assertion body length {length} exceeds maximum body size")
        body = b""
        if length > 0:
            body = data[pos : pos + length]
            if len(body) != length:
                raise DecodeError("unexpected EOF")
            pos += length
        end_of_body, pos, _ = _read_until(
            data, pos, MAX_SIGNATURE_SIZE, "error reading assertion trailer"
        )
        if end_of_body == _NLNL:
            signature, pos, _ = _read_until(
                data, pos, MAX_SIGNATURE_SIZE, "error reading assertion signature"
            )
            # As snapd's Decoder: the separator after the headers stays in the
            # content even with no body, so an extra blank line before the
            # signature is kept (and the signature will not verify), exactly
            # as decode() splits the same bytes.
            content = head_and_sep + body
        else:
            if length > 0:
                raise DecodeError("missing content/signature separator")
            signature = end_of_body
            content = head
        if signature.endswith(_NLNL):
            signature = signature[:-1]
        yield _assemble(headers, body, content, signature)


def encode_stream(assertions: Iterable[Assertion]) -> bytes:
    """Join assertions into one stream exactly as snapd's ``Encoder`` writes it."""
    parts: list[bytes] = []
    for a in assertions:
        if parts:
            parts.append(b"\n")
        parts.append(a.content)
        parts.append(_NLNL)
        parts.append(a.signature)
        if not a.signature.endswith(b"\n"):
            parts.append(b"\n")
    return b"".join(parts)


def sign(
    type_name: str,
    headers: Mapping[str, object],
    key: PrivateKey,
    body: bytes | str = b"",
    *,
    signed_at: datetime | None = None,
) -> Assertion:
    """Sign an assertion the way snapd's signer does, byte for byte.

    ``headers`` may hold strings, lists and maps; ``type``, ``body-length`` and
    ``sign-key-sha3-384`` are filled in. Raises :class:`SigningError` when the
    headers do not make a valid assertion of ``type_name``; nothing is signed
    then. The steps and their order follow snapd's ``assembleAndSign``; where
    snapd would write bytes that do not decode back to the same headers, this
    refuses instead (see :func:`_headers.normalize`).
    """
    cls = lookup_type(type_name)
    if cls is None:
        raise SigningError(f"unknown assertion type: {q(type_name)}")
    t = cls.TYPE
    given_type = headers.get("type", type_name)
    if given_type != type_name:
        raise SigningError(f"header type {q(given_type)} does not match {q(type_name)}")
    final = _signing_headers(headers)
    raw_body = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    try:
        raw_body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SigningError("assertion body is not utf8") from e
    final["type"] = type_name
    final["sign-key-sha3-384"] = key.public_key.id
    if raw_body:
        final["body-length"] = str(len(raw_body))
    else:
        final.pop("body-length", None)
    try:
        if t.no_authority:
            _check_no_authority(type_name, final)
        else:
            _check_authority(final)
        format_ = _checks.iteration(final, "format")
    except DecodeError as e:
        raise SigningError(str(e)) from e
    if format_ > t.max_format:
        raise SigningError(
            f"cannot sign {q(type_name)} assertion with format {format_} higher than "
            f"max supported format {t.max_format}"
        )
    try:
        suggested = cls.suggest_format(final)
    except DecodeError as e:
        raise SigningError(f"assertion {type_name}: {e}") from e
    if suggested > format_:
        raise SigningError(
            f"cannot sign {q(type_name)} assertion with format set to {format_} lower than "
            f"min format {suggested} covering included features"
        )
    try:
        revision = _checks.iteration(final, "revision")
    except DecodeError as e:
        raise SigningError(str(e)) from e
    if format_ == 0:
        final.pop("format", None)
    if revision == 0:
        final.pop("revision", None)
    if "signatory-id" in final and final["signatory-id"] == final["authority-id"]:
        # snapd writes signatory-id only when it differs from authority-id
        del final["signatory-id"]

    written = _written(final)
    content = _write_content(t, final, written, raw_body)
    if len(content) > MAX_HEADERS_SIZE + MAX_BODY_SIZE:
        raise SigningError("assertion exceeds the maximum assertion size")
    # Run every family check before spending a signature (HSM calls are slow);
    # the checked assertion then only needs its signature filled in.
    try:
        if len(written) != len(final) or any(written[n] is not final[n] for n in written):
            # snapd's checks see the empty lists and maps its writer leaves
            # out (an empty "revision-authority" is refused, for one)
            _assemble(dict(final), raw_body, content, b"-")
        unsigned = _assemble(written, raw_body, content, b"-")
    except DecodeError as e:
        raise SigningError(str(e)) from e
    created = int(signed_at.timestamp() if signed_at else time.time())
    prefix, digest = _openpgp.signing_digest(content, created)
    packet = _openpgp.signature_packet(prefix, digest, key.sign_digest(digest))
    signature = (_openpgp.encode_v1(packet) + "\n").encode("ascii")
    return dataclasses.replace(unsigned, signature=signature)


def _signing_headers(headers: Mapping[str, object]) -> dict[str, HeaderValue]:
    """snapd's checkHeaders, plus the name check its parser would make of the output."""
    final: dict[str, HeaderValue] = {}
    try:
        for name, value in headers.items():
            if not isinstance(name, str) or not _headers.is_valid_name(name):
                raise DecodeError(f"invalid header name: {q(name)}")
            final[name] = _headers.freeze(value, name)
    except DecodeError as e:
        raise SigningError(str(e)) from e
    return final


def _written(final: dict[str, HeaderValue]) -> dict[str, HeaderValue]:
    """The headers as their bytes will decode: empty lists and maps left out."""
    written: dict[str, HeaderValue] = {}
    try:
        for name, value in final.items():
            kept = value if isinstance(value, str) else _headers.normalize(value, name)
            if kept is not None:
                written[name] = kept
    except DecodeError as e:
        raise SigningError(str(e)) from e
    return written


def _write_content(
    t: AssertionType,
    final: dict[str, HeaderValue],
    written: dict[str, HeaderValue],
    raw_body: bytes,
) -> bytes:
    """The signed content in snapd's header order (spec section 1.3).

    Checks run on ``final`` (what snapd checks), values come from ``written``;
    a header left out entirely is simply not written.
    """
    out: list[str] = [f"type: {t.name}"]
    done = set(_META) | {"signatory-id"}
    for name in ("format", "authority-id", "signatory-id", "revision"):
        if name in written:
            _headers.write_entry(out, f"{name}:", written[name], 0)
    for name in t.primary_key:
        default = t.optional_primary_key_defaults.get(name)
        if name not in final and default is not None:
            # snapd fills the default in and writes it among the sorted headers
            final[name] = written[name] = default
            continue
        try:
            value = _checks.primary_key(final, name)
        except DecodeError as e:
            raise SigningError(str(e)) from e
        if value != default:
            _headers.write_entry(out, f"{name}:", value, 0)
        done.add(name)
    for name in sorted(n for n in written if n not in done):
        _headers.write_entry(out, f"{name}:", written[name], 0)
    if raw_body:
        _headers.write_entry(out, "body-length:", written["body-length"], 0)
    _headers.write_entry(out, "sign-key-sha3-384:", written["sign-key-sha3-384"], 0)
    content = "".join(out).encode("utf-8")
    if raw_body:
        content += _NLNL + raw_body
    return content


def verify_signature(assertion: Assertion, key: PublicKey) -> None:
    """Check the assertion's signature over its exact content with ``key``.

    Raises :class:`SignatureError` (malformed block, hash tag mismatch, RSA failure).
    """
    try:
        packet = _openpgp.parse_signature(assertion.signature)
    except SignatureError as e:
        raise SignatureError(f"failed signature verification: {e}") from e
    digest = packet.digest(assertion.content)
    if digest[:2] != packet.hash_tag:
        raise SignatureError("failed signature verification: hash tag doesn't match")
    try:
        key.verify_digest(digest, packet.signature)
    except SignatureError as e:
        raise SignatureError(f"failed signature verification: {e}") from e
