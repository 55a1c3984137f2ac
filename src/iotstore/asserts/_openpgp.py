"""The OpenPGP subset snapd uses: v4 RSA public-key packets and v4 signature packets.

snapd borrows OpenPGP's packet syntax but none of its semantics (no user ids,
no keyrings). Its "v1" envelope is ``0x01`` followed by exactly one packet,
base64 encoded and wrapped at 76 columns. This module is the only place that
knows those bytes; no general OpenPGP library matches snapd's subset (fixed
key timestamp, tolerated gpg subpackets, strict trailing-data rules).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass

from .errors import InvalidKeyError, SignatureError

V1 = 0x01
LINE_LENGTH = 76
# snapd normalises every key packet to this creation time, so a key's id
# depends only on (n, e), never on when or by whom the key was made.
FIXED_KEY_TIME = 0x5685C180  # 2016-01-01T00:00:00Z

TAG_SIGNATURE = 2
TAG_PUBLIC_KEY = 6
ALGO_RSA = 1
_RSA_ALGOS = frozenset({1, 2, 3})  # RSA, RSA encrypt-only, RSA sign-only: all RSA key material
HASH_SHA512 = 10
SUB_CREATION_TIME = 2
SUB_ISSUER = 16
# Subpacket types Go's openpgp package understands; an unknown one marked
# critical makes snapd refuse the signature, so we refuse it too.
_KNOWN_SUBPACKETS = frozenset({2, 3, 9, 11, 16, 21, 22, 25, 27, 29, 30, 32, 33})
_FOUR_BYTE_SUBPACKETS = frozenset({2, 3, 9})


def encode_v1(packet: bytes) -> str:
    """Return snapd's text envelope for one packet: base64 of 0x01+packet, 76-column lines."""
    flat = base64.b64encode(bytes((V1,)) + packet).decode("ascii")
    return "\n".join(flat[i : i + LINE_LENGTH] for i in range(0, len(flat), LINE_LENGTH))


def decode_v1(
    text: bytes, kind: str, error: type[InvalidKeyError | SignatureError]
) -> tuple[int, bytes]:
    """Decode snapd's envelope and return ``(tag, packet_body)`` of its single packet."""
    if not text:
        raise error(f"cannot decode {kind}: no data")
    flat = text.replace(b"\n", b"").replace(b"\r", b"")
    if len(flat) % 4 or b"=" in flat.rstrip(b"="):
        raise error(f"cannot decode {kind}: illegal base64 data")
    try:
        raw = base64.b64decode(flat, validate=True)
    except binascii.Error as e:
        raise error(f"cannot decode {kind}: illegal base64 data") from e
    if not raw:
        raise error(f"cannot decode {kind}: base64 without data")
    if raw[0] != V1:
        raise error(f"unsupported {kind} format version: {raw[0]}")
    tag, body, end = read_packet(raw, 1, kind, error)
    if end != len(raw):
        raise error(f"{kind} has spurious trailing data")
    return tag, body


def read_packet(
    data: bytes, offset: int, kind: str, error: type[InvalidKeyError | SignatureError]
) -> tuple[int, bytes, int]:
    """Parse one packet header at ``offset`` (old or new format); return tag, body, end offset."""
    try:
        first = data[offset]
        if not first & 0x80:
            raise error(f"cannot decode {kind}: tag byte does not have MSB set")
        if first & 0x40:  # new format
            tag = first & 0x3F
            o1 = data[offset + 1]
            if o1 < 192:
                length, start = o1, offset + 2
            elif o1 < 224:
                length, start = ((o1 - 192) << 8) + data[offset + 2] + 192, offset + 3
            elif o1 == 255:
                (length,) = struct.unpack_from(">I", data, offset + 2)
                start = offset + 6
            else:
                raise error(f"cannot decode {kind}: partial body length not supported")
        else:  # old format
            tag = (first >> 2) & 0x0F
            length_type = first & 0x03
            if length_type == 0:
                length, start = data[offset + 1], offset + 2
            elif length_type == 1:
                (length,) = struct.unpack_from(">H", data, offset + 1)
                start = offset + 3
            elif length_type == 2:
                (length,) = struct.unpack_from(">I", data, offset + 1)
                start = offset + 5
            else:
                raise error(f"cannot decode {kind}: indeterminate packet length not supported")
    except (IndexError, struct.error) as e:
        raise error(f"cannot decode {kind}: unexpected EOF") from e
    end = start + length
    if end > len(data):
        raise error(f"cannot decode {kind}: unexpected EOF")
    return tag, data[start:end], end


def _new_format_header(tag: int, length: int) -> bytes:
    if length < 192:
        return bytes((0xC0 | tag, length))
    if length < 8384:
        length -= 192
        return bytes((0xC0 | tag, (length >> 8) + 192, length & 0xFF))
    return bytes((0xC0 | tag, 0xFF)) + struct.pack(">I", length)


def _mpi(value: int) -> bytes:
    bits = value.bit_length()
    return struct.pack(">H", bits) + value.to_bytes((bits + 7) // 8, "big")


def _read_mpi(data: bytes, offset: int) -> tuple[bytes, int]:
    if offset + 2 > len(data):
        raise ValueError("short MPI")
    (bits,) = struct.unpack_from(">H", data, offset)
    end = offset + 2 + (bits + 7) // 8
    if end > len(data):
        raise ValueError("short MPI")
    return data[offset + 2 : end], end


def public_key_packet(n: int, e: int) -> bytes:
    """The normalised v4 RSA key packet snapd hashes and encodes."""
    body = bytes((4,)) + struct.pack(">I", FIXED_KEY_TIME) + bytes((ALGO_RSA,)) + _mpi(n) + _mpi(e)
    return _new_format_header(TAG_PUBLIC_KEY, len(body)) + body


def key_id(packet: bytes) -> str:
    """snapd's key id: base64url, unpadded, of SHA3-384 over 0x01 + the normalised packet."""
    digest = hashlib.sha3_384(bytes((V1,)) + packet).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def parse_public_key(text: bytes) -> tuple[int, int]:
    """Decode an encoded public key and return its RSA ``(n, e)``."""
    tag, body = decode_v1(text, "public key", InvalidKeyError)
    if tag != TAG_PUBLIC_KEY:
        raise InvalidKeyError(f"expected public key, got instead packet tag {tag}")
    try:
        if body[0] != 4:
            raise InvalidKeyError(f"unsupported public key packet version {body[0]}")
        if body[5] not in _RSA_ALGOS:
            raise InvalidKeyError("expected RSA public key")
        n_bytes, off = _read_mpi(body, 6)
        e_bytes, off = _read_mpi(body, off)
    except (IndexError, ValueError) as e:
        raise InvalidKeyError("cannot decode public key: truncated key packet") from e
    if off != len(body):
        raise InvalidKeyError("cannot decode public key: trailing data in key packet")
    n, e_ = int.from_bytes(n_bytes, "big"), int.from_bytes(e_bytes, "big")
    if n == 0 or e_ == 0:
        raise InvalidKeyError("cannot decode public key: zero RSA parameter")
    return n, e_


@dataclass(frozen=True, slots=True)
class SignaturePacket:
    """The parts of a v4 signature packet that verification needs."""

    hashed_prefix: bytes  # version byte through the end of the hashed subpackets, verbatim
    hash_tag: bytes
    signature: bytes  # the RSA value as carried (leading zeros may be missing)
    created: int

    def digest(self, content: bytes) -> bytes:
        """SHA-512 over content, the hashed prefix and the v4 trailer."""
        h = hashlib.sha512(content)
        h.update(self.hashed_prefix)
        h.update(b"\x04\xff" + struct.pack(">I", len(self.hashed_prefix)))
        return h.digest()


def _hashed_prefix(created: int) -> bytes:
    subpackets = bytes((5, SUB_CREATION_TIME)) + struct.pack(">I", created)
    return bytes((4, 0x00, ALGO_RSA, HASH_SHA512)) + struct.pack(">H", len(subpackets)) + subpackets


def signing_digest(content: bytes, created: int) -> tuple[bytes, bytes]:
    """Return ``(hashed_prefix, sha512_digest)`` for signing ``content`` at ``created``."""
    prefix = _hashed_prefix(created)
    h = hashlib.sha512(content)
    h.update(prefix)
    h.update(b"\x04\xff" + struct.pack(">I", len(prefix)))
    return prefix, h.digest()


def signature_packet(hashed_prefix: bytes, digest: bytes, rsa_signature: bytes) -> bytes:
    """Assemble the packet exactly as snapd's signer writes it (MPI length 8*k)."""
    body = (
        hashed_prefix
        + b"\x00\x00"  # no unhashed subpackets
        + digest[:2]
        + struct.pack(">H", 8 * len(rsa_signature))
        + rsa_signature
    )
    return _new_format_header(TAG_SIGNATURE, len(body)) + body


def _parse_subpackets(area: bytes, hashed: bool) -> int | None:
    created: int | None = None
    off = 0
    while off < len(area):
        first = area[off]
        if first < 192:
            length, off = first, off + 1
        elif first < 255:
            if off + 2 > len(area):
                raise SignatureError("signature subpacket truncated")
            length, off = ((first - 192) << 8) + area[off + 1] + 192, off + 2
        else:
            if off + 5 > len(area):
                raise SignatureError("signature subpacket truncated")
            (length,) = struct.unpack_from(">I", area, off + 1)
            off += 5
        if length == 0 or off + length > len(area):
            raise SignatureError("signature subpacket truncated")
        kind, critical = area[off] & 0x7F, bool(area[off] & 0x80)
        data = area[off + 1 : off + length]
        off += length
        if kind not in _KNOWN_SUBPACKETS:
            if critical:
                raise SignatureError(f"unknown critical signature subpacket type {kind}")
            continue
        if kind in _FOUR_BYTE_SUBPACKETS and len(data) != 4:
            raise SignatureError(f"signature subpacket {kind} has wrong length")
        if kind == SUB_ISSUER and len(data) != 8:
            raise SignatureError("issuer subpacket with bad length")
        if kind == SUB_CREATION_TIME:
            if not hashed:
                raise SignatureError("signature creation time in non-hashed area")
            (created,) = struct.unpack(">I", data)
    return created


def parse_signature(text: bytes) -> SignaturePacket:
    """Decode and structurally check a signature block (snapd's rules, section 2.4)."""
    tag, body = decode_v1(text, "signature", SignatureError)
    if tag != TAG_SIGNATURE:
        raise SignatureError(f"expected signature, got instead packet tag {tag}")
    try:
        if body[0] != 4:
            raise SignatureError(f"unsupported signature packet version {body[0]}")
        if body[2] != ALGO_RSA:
            raise SignatureError("public key and signature use different algorithms")
        if body[3] != HASH_SHA512:
            raise SignatureError(f"unsupported signature hash algorithm {body[3]}")
        (hashed_len,) = struct.unpack_from(">H", body, 4)
        hashed_end = 6 + hashed_len
        hashed = body[6:hashed_end]
        if len(hashed) != hashed_len:
            raise SignatureError("signature packet truncated")
        (unhashed_len,) = struct.unpack_from(">H", body, hashed_end)
        unhashed_end = hashed_end + 2 + unhashed_len
        unhashed = body[hashed_end + 2 : unhashed_end]
        if len(unhashed) != unhashed_len:
            raise SignatureError("signature packet truncated")
        hash_tag = body[unhashed_end : unhashed_end + 2]
        if len(hash_tag) != 2:
            raise SignatureError("signature packet truncated")
        value, end = _read_mpi(body, unhashed_end + 2)
    except (IndexError, ValueError, struct.error) as e:
        raise SignatureError("signature packet truncated") from e
    if end != len(body):
        raise SignatureError("signature packet has trailing data")
    created = _parse_subpackets(hashed, hashed=True)
    _parse_subpackets(unhashed, hashed=False)
    if created is None:
        raise SignatureError("no creation time in signature")
    return SignaturePacket(
        hashed_prefix=body[:hashed_end], hash_tag=hash_tag, signature=value, created=created
    )
