"""The deployment's root of trust: a self-signed root ``account`` and ``account-key``.

Devices trust exactly these two assertions (compiled into their snapd), so
the root key signs only accounts, account-keys and store-level assertions,
and its private half never leaves the key store.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass
from datetime import UTC, datetime

from iotstore import asserts
from iotstore.keystore import KeyStore

__all__ = ["ROOT_KEY_NAME", "RootAuthority", "RootAuthorityError", "adopt_root", "create_root"]

ROOT_KEY_NAME = "root"
_ID_ALPHABET = string.ascii_letters + string.digits


class RootAuthorityError(Exception):
    """The root authority cannot be created, adopted or loaded."""


def new_account_id() -> str:
    """A random 32-character account id, the shape the store gives its accounts."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(32))


@dataclass(frozen=True)
class RootAuthority:
    """The trusted set of a deployment and the name of its signing key."""

    account: asserts.Account
    account_key: asserts.AccountKey
    key_name: str = ROOT_KEY_NAME

    @property
    def account_id(self) -> str:
        """The root's account id (the ``authority-id`` of everything it signs)."""
        return self.account.account_id

    @property
    def trusted(self) -> list[asserts.Assertion]:
        """Root account then root account-key, as devices load them."""
        return [self.account, self.account_key]

    def stream(self) -> bytes:
        """The trusted set as one assertion stream."""
        return asserts.encode_stream(self.trusted)

    @classmethod
    def from_stream(cls, data: bytes, key_name: str = ROOT_KEY_NAME) -> RootAuthority:
        """Load a root exported by :meth:`stream`, checking its self-signatures."""
        members = list(asserts.decode_stream(data))
        accounts = [a for a in members if isinstance(a, asserts.Account)]
        keys = [a for a in members if isinstance(a, asserts.AccountKey)]
        if len(members) != 2 or len(accounts) != 1 or len(keys) != 1:
            raise RootAuthorityError("a root stream holds exactly one account and one account-key")
        root = cls(accounts[0], keys[0], key_name)
        root.verify()
        return root

    def verify(self) -> None:
        """Check that both assertions are self-signed by the root key of the root account."""
        key = self.account_key
        if not (
            self.account.account_id == self.account.authority_id == key.account_id
            and key.authority_id == key.account_id
            and self.account.sign_key_id == key.key_id == key.sign_key_id
        ):
            raise RootAuthorityError("root account and account-key are not one self-signed root")
        for a in self.trusted:
            asserts.verify_signature(a, key.public_key)


def _self_sign(
    keystore: KeyStore, key_name: str, root_id: str, display_name: str, now: datetime
) -> RootAuthority:
    signer = keystore.signer(key_name)
    when = asserts.format_time(now)
    account = asserts.sign(
        "account",
        {
            "authority-id": root_id,
            "account-id": root_id,
            "display-name": display_name,
            "validation": "verified",
            "timestamp": when,
        },
        signer,
        signed_at=now,
    )
    account_key = asserts.sign(
        "account-key",
        {
            "authority-id": root_id,
            "account-id": root_id,
            "name": ROOT_KEY_NAME,
            "public-key-sha3-384": signer.public_key.id,
            "since": when,
        },
        signer,
        signer.public_key.encoded,
        signed_at=now,
    )
    assert isinstance(account, asserts.Account)
    assert isinstance(account_key, asserts.AccountKey)
    return RootAuthority(account, account_key, key_name)


def _check_id(root_id: str) -> None:
    if not asserts.ACCOUNT_ID_RE.fullmatch(root_id):
        raise RootAuthorityError(
            f"invalid root account id {root_id!r}: use 32 letters and digits, or 2-28 of "
            "lower-case letters, digits and hyphens"
        )


def create_root(
    keystore: KeyStore,
    root_id: str | None = None,
    *,
    display_name: str = "iotstore root",
    bits: int = 4096,
    now: datetime | None = None,
) -> RootAuthority:
    """Generate the root key in ``keystore`` and self-sign the trusted set."""
    root_id = root_id or new_account_id()
    _check_id(root_id)
    keystore.generate(ROOT_KEY_NAME, bits)
    return _self_sign(keystore, ROOT_KEY_NAME, root_id, display_name, _now(now))


def adopt_root(
    keystore: KeyStore,
    root_id: str,
    pem: bytes,
    *,
    display_name: str = "iotstore root",
    password: bytes | None = None,
    now: datetime | None = None,
) -> RootAuthority:
    """Import a root key generated offline and self-sign the trusted set with it."""
    _check_id(root_id)
    keystore.import_pem(ROOT_KEY_NAME, pem, password)
    return _self_sign(keystore, ROOT_KEY_NAME, root_id, display_name, _now(now))


def _now(now: datetime | None) -> datetime:
    return (now or datetime.now(UTC)).replace(microsecond=0)
