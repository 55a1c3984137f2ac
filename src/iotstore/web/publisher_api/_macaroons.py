"""Ubuntu-One style login macaroons, with iotstore as both the store and the SSO discharger.

snapcraft (craft-store's ``UbuntuOneStoreClient``) logs in in three steps:

1. ``POST /dev/api/acl/`` asks for a *root macaroon*; it must carry a
   third-party caveat whose location is the SSO's ``host[:port]``
   (craft-store compares it with the netloc of ``UBUNTU_ONE_SSO_URL``).
2. ``POST {SSO}/api/v2/tokens/discharge`` with email, password and that
   caveat's id returns a *discharge macaroon*.
3. Every request sends ``Authorization: Macaroon root=R, discharge=D`` with
   ``D`` bound to ``R``'s signature.

Nothing is stored at step 1, so anonymous callers cannot fill the database.
The caveat id carries what was asked for (permissions, expiry, description),
sealed with an HMAC under the deployment secret; the caveat key is derived
from the id. At step 2 the password is checked and an ordinary API token
(``accounts.tokens``: revocable, listed with the account's tokens) is issued
with exactly those restrictions; the discharge macaroon names it in a
first-party caveat. At step 3 :func:`unwrap` verifies root and bound
discharge and hands back that token, which then goes through the same
verification as any other token (revocation, expiry, disabled account).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pymacaroons import Macaroon, Verifier

from iotstore.accounts.errors import BadCredentials
from iotstore.asserts import format_time, parse_time
from iotstore.asserts.errors import DecodeError
from iotstore.errors import InvalidInput
from iotstore.stores.permissions import Permission

__all__ = [
    "MAX_TTL",
    "LoginRequest",
    "discharge",
    "mint_root",
    "open_caveat_id",
    "our_permissions",
    "unwrap",
]

MAX_TTL = timedelta(days=2 * 366)
_ROOT_PREFIX = "iotstore-u1-"
_CAVEAT_PREFIX = "iotstore-u1c:"
_TOKEN_CAVEAT = "iotstore-token = "  # noqa: S105 - a caveat prefix, not a secret
_EXPIRES_CAVEAT = "iotstore-expires = "
_MAX_MACAROON = 16384

# The store's legacy ACL vocabulary (snapcraft, snapd) and craft-store's newer one, mapped
# onto our permission table. Every login may also see its own account (whoami, account).
_BASE = {Permission.ACCOUNT_SELF, Permission.STORE_VIEW, Permission.SNAP_VIEW}
_VIEW = {Permission.SNAP_VIEW, Permission.SNAP_DOWNLOAD}
_MANAGE = {Permission.SNAP_UPLOAD, Permission.SNAP_RELEASE, Permission.SNAP_COLLABORATORS}
PERMISSION_MAP: dict[str, set[Permission]] = {
    "package_access": _VIEW,
    "package_purchase": set(),
    "package_metrics": set(),
    "package_manage": _MANAGE,
    "package_push": {Permission.SNAP_UPLOAD},
    "package_upload": {Permission.SNAP_UPLOAD},
    "package_update": {Permission.SNAP_UPLOAD},
    "package_register": {Permission.SNAP_REGISTER},
    "package_release": {Permission.SNAP_RELEASE},
    "modify_account_key": set(),
    "store_admin": {
        Permission.STORE_MANAGE,
        Permission.MEMBERS_VIEW,
        Permission.MEMBERS_MANAGE,
        Permission.CURATION_MANAGE,
        Permission.SNAP_REVIEW,
    },
    "account-manage-keys": set(),
    "account-manage-metadata": set(),
    "account-register-package": {Permission.SNAP_REGISTER},
    "account-view-packages": _VIEW,
    "package-manage": _MANAGE,
    "package-manage-acl": {Permission.SNAP_COLLABORATORS},
    "package-manage-library": {Permission.SNAP_UPLOAD},
    "package-manage-metadata": {Permission.SNAP_UPLOAD},
    "package-manage-releases": {Permission.SNAP_RELEASE},
    "package-manage-revisions": {Permission.SNAP_UPLOAD},
    "package-view": _VIEW,
    "package-view-acl": _VIEW,
    "package-view-metadata": _VIEW,
    "package-view-metrics": _VIEW,
    "package-view-releases": _VIEW,
    "package-view-revisions": _VIEW,
    "store-manage": {Permission.STORE_MANAGE, Permission.MEMBERS_MANAGE},
    "store-view": {Permission.STORE_VIEW, Permission.MEMBERS_VIEW},
}


def our_permissions(requested: list[str]) -> list[str]:
    """Our permission names for the ACL names a client asked for; unknown names are refused."""
    unknown = sorted(set(requested) - set(PERMISSION_MAP))
    if unknown:
        raise InvalidInput(f"unknown permissions: {', '.join(unknown)}", field="permissions")
    granted = set(_BASE)
    for name in requested:
        granted |= PERMISSION_MAP[name]
    return sorted(p.value for p in granted)


@dataclass(frozen=True)
class LoginRequest:
    """What ``/dev/api/acl/`` was asked for, sealed into the caveat id."""

    permissions: list[str]  # as the client named them
    description: str
    expires: datetime
    channels: list[str] | None
    packages: list[str] | None

    def to_json(self) -> dict[str, Any]:
        """Compact JSON for the caveat id."""
        return {
            "p": self.permissions,
            "d": self.description,
            "e": format_time(self.expires),
            "c": self.channels,
            "k": self.packages,
            "n": secrets.token_hex(8),  # two identical requests get different caveats
        }


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _derive(secret: bytes, label: str, value: str) -> bytes:
    return hmac.new(secret, f"{label}:{value}".encode(), hashlib.sha256).digest()


def _seal(secret: bytes, payload: bytes) -> str:
    tag = _derive(secret, "u1-caveat-id", _b64(payload))
    return _CAVEAT_PREFIX + _b64(payload) + "." + _b64(tag)


def open_caveat_id(secret: bytes, caveat_id: str) -> LoginRequest:
    """The login request sealed in ``caveat_id``; :class:`BadCredentials` if it is not ours."""
    bad = BadCredentials("this caveat was not issued by this store")
    if not caveat_id.startswith(_CAVEAT_PREFIX) or len(caveat_id) > 4096:
        raise bad
    payload_text, _, tag_text = caveat_id[len(_CAVEAT_PREFIX) :].partition(".")
    try:
        tag = _unb64(tag_text)
        payload = json.loads(_unb64(payload_text))
    except (binascii.Error, ValueError) as e:
        raise bad from e
    if not hmac.compare_digest(tag, _derive(secret, "u1-caveat-id", payload_text)):
        raise bad
    try:
        return LoginRequest(
            permissions=list(payload["p"]),
            description=str(payload["d"]),
            expires=parse_time(payload["e"], "expires"),
            channels=payload["c"],
            packages=payload["k"],
        )
    except (KeyError, TypeError, DecodeError) as e:  # sealed by us: only an old format
        raise bad from e


def mint_root(secret: bytes, location: str, sso_location: str, request: LoginRequest) -> str:
    """A serialized root macaroon whose third-party caveat our SSO endpoint discharges."""
    identifier = _ROOT_PREFIX + secrets.token_hex(16)
    root = Macaroon(
        location=location, identifier=identifier, key=_derive(secret, "u1-root", identifier)
    )
    root.add_first_party_caveat(_EXPIRES_CAVEAT + format_time(request.expires))
    caveat_id = _seal(secret, json.dumps(request.to_json(), separators=(",", ":")).encode())
    root.add_third_party_caveat(sso_location, _derive(secret, "u1-caveat", caveat_id), caveat_id)
    return str(root.serialize())


def discharge(secret: bytes, sso_location: str, caveat_id: str, token: str) -> str:
    """A serialized discharge of ``caveat_id`` that stands for the API token ``token``."""
    macaroon = Macaroon(
        location=sso_location, identifier=caveat_id, key=_derive(secret, "u1-caveat", caveat_id)
    )
    macaroon.add_first_party_caveat(_TOKEN_CAVEAT + token)
    return str(macaroon.serialize())


def _deserialize(text: str) -> Macaroon:
    if not text or len(text) > _MAX_MACAROON:
        raise BadCredentials("malformed macaroon")
    try:
        return Macaroon.deserialize(text)
    except Exception as e:
        # pymacaroons parses untrusted bytes and fails with whatever its parser hits
        raise BadCredentials("malformed macaroon") from e


def check_discharge(secret: bytes, serialized: str) -> str:
    """The caveat id of a discharge macaroon we issued (its signature checked)."""
    macaroon = _deserialize(serialized)
    caveat_id = macaroon.identifier
    if isinstance(caveat_id, bytes):
        caveat_id = caveat_id.decode("utf-8", "replace")
    open_caveat_id(secret, caveat_id)
    verifier = Verifier()
    verifier.satisfy_general(lambda caveat: caveat.startswith(_TOKEN_CAVEAT))
    try:
        verifier.verify(macaroon, _derive(secret, "u1-caveat", caveat_id))
    except Exception as e:  # untrusted input to pymacaroons, as above
        raise BadCredentials("the discharge macaroon does not verify") from e
    return str(caveat_id)


def unwrap(secret: bytes, root: str, bound_discharge: str, now: datetime | None = None) -> str:
    """The API token a root macaroon and its bound discharge stand for.

    Raises :class:`BadCredentials` when either does not verify or the root has
    expired; the token itself is verified by the caller like any other.
    """
    now = now or datetime.now(UTC)
    root_macaroon = _deserialize(root)
    bound = _deserialize(bound_discharge)
    identifier = root_macaroon.identifier
    if isinstance(identifier, bytes):
        identifier = identifier.decode("utf-8", "replace")
    if not identifier.startswith(_ROOT_PREFIX):
        raise BadCredentials("not a login macaroon of this store")
    tokens: list[str] = []
    expired: list[bool] = []

    def satisfy(caveat: str) -> bool:
        if caveat.startswith(_TOKEN_CAVEAT):
            tokens.append(caveat[len(_TOKEN_CAVEAT) :])
            return True
        if caveat.startswith(_EXPIRES_CAVEAT):
            try:
                expired.append(now >= parse_time(caveat[len(_EXPIRES_CAVEAT) :], "expires"))
            except DecodeError:
                return False
            return True
        return False  # unknown caveats deny

    verifier = Verifier()
    verifier.satisfy_general(satisfy)
    try:
        verifier.verify(
            root_macaroon, _derive(secret, "u1-root", identifier), discharge_macaroons=[bound]
        )
    except Exception as e:  # untrusted input to pymacaroons, as above
        raise BadCredentials("the login macaroons do not verify") from e
    if any(expired):
        raise BadCredentials("the login has expired")
    if len(tokens) != 1:
        raise BadCredentials("the discharge does not name a token")
    return tokens[0]
