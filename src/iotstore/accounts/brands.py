"""Brand accounts and their signing keys, certified by the deployment's root."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from iotstore import asserts
from iotstore.db import utcnow
from iotstore.keystore import KeyStore

from .errors import AccountExists, AccountRuleViolation, BrandNotFound, KeyInUse
from .models import Brand, BrandKey
from .root_authority import RootAuthority, new_account_id

__all__ = ["BrandService", "brand_dict", "brand_key_dict"]

_USERNAME_RE = re.compile(r"[a-z0-9](?:-?[a-z0-9]){1,27}")
VALIDATIONS = ("unproven", "starred", "verified")


def brand_dict(brand: Brand) -> dict[str, Any]:
    """A brand as JSON-ready values."""
    return {
        "account-id": brand.account_id,
        "username": brand.username,
        "display-name": brand.display_name,
        "validation": brand.validation,
    }


def brand_key_dict(key: BrandKey) -> dict[str, Any]:
    """A brand key's public description."""
    return {
        "name": key.name,
        "key-id": key.key_id,
        "held": key.keystore_name is not None,
        "since": asserts.format_time(key.since),
        "until": asserts.format_time(key.until) if key.until else None,
        "state": key.state,
    }


class BrandService:
    """Create brands, certify their keys, disable and revoke keys with guard rails."""

    def __init__(
        self,
        session: Session,
        keystore: KeyStore,
        root: RootAuthority,
        trust: asserts.Database,
    ) -> None:
        self._session = session
        self._keystore = keystore
        self._root = root
        self._trust = trust

    def _sign_as_root(
        self, type_name: str, headers: dict[str, object], body: str = ""
    ) -> asserts.Assertion:
        signer = self._keystore.signer(self._root.key_name)
        a = asserts.sign(
            type_name, {"authority-id": self._root.account_id, **headers}, signer, body
        )
        self._trust.add(a)
        return a

    def get(self, account_id: str) -> Brand:
        """The brand; raises :class:`BrandNotFound`."""
        brand = self._session.get(Brand, account_id)
        if brand is None:
            raise BrandNotFound(f"no brand {account_id!r}")
        return brand

    def create(
        self,
        username: str,
        display_name: str,
        *,
        account_id: str | None = None,
        validation: str = "verified",
    ) -> Brand:
        """A brand with its ``account`` assertion signed by the root."""
        if not _USERNAME_RE.fullmatch(username):
            raise AccountRuleViolation(
                "usernames are 2-28 lower-case letters, digits and single hyphens",
                field="username",
            )
        if validation not in VALIDATIONS:
            raise AccountRuleViolation(
                f"validation must be one of {', '.join(VALIDATIONS)}", field="validation"
            )
        name = display_name.strip()
        if not 1 <= len(name) <= 120:
            raise AccountRuleViolation(
                "display name must be 1-120 characters", field="display-name"
            )
        account_id = account_id or new_account_id()
        if not asserts.ACCOUNT_ID_RE.fullmatch(account_id):
            raise AccountRuleViolation("not a valid account id", field="account-id")
        taken = self._session.scalars(
            select(Brand).where((Brand.username == username) | (Brand.account_id == account_id))
        ).first()
        if taken is not None:
            raise AccountExists("brand username or account id is taken", field="username")
        brand = Brand(
            account_id=account_id, username=username, display_name=name, validation=validation
        )
        self._session.add(brand)
        self._session.flush()
        self._sign_as_root(
            "account",
            {
                "account-id": account_id,
                "username": username,
                "display-name": name,
                "validation": validation,
                "timestamp": asserts.format_time(utcnow()),
            },
        )
        return brand

    def keys(self, account_id: str) -> list[BrandKey]:
        """The brand's keys, by name."""
        self.get(account_id)
        return list(
            self._session.scalars(
                select(BrandKey).where(BrandKey.brand_id == account_id).order_by(BrandKey.name)
            )
        )

    def key(self, account_id: str, name: str) -> BrandKey:
        """One brand key by name; raises :class:`BrandNotFound`."""
        key = self._session.scalars(
            select(BrandKey).where(BrandKey.brand_id == account_id, BrandKey.name == name)
        ).first()
        if key is None:
            raise BrandNotFound(f"brand {account_id!r} has no key {name!r}")
        return key

    def signer(self, account_id: str, name: str) -> asserts.PrivateKey:
        """A signer for an active brand key held by the key store.

        Raises :class:`BrandNotFound`, or :class:`AccountRuleViolation` for a key the
        brand holds itself or one that is disabled or revoked.
        """
        key = self.key(account_id, name)
        if key.keystore_name is None or key.state != "active":
            raise AccountRuleViolation(
                f"brand key {name!r} is not an active key held by iotstore", field="key"
            )
        return self._keystore.signer(key.keystore_name)

    def _check_key_name(self, account_id: str, name: str) -> None:
        if not asserts.KEY_NAME_RE.fullmatch(name) or len(name) > 64:
            raise AccountRuleViolation(
                "key names are lower-case letters, digits and single hyphens", field="name"
            )
        existing = self._session.scalars(
            select(BrandKey).where(BrandKey.brand_id == account_id, BrandKey.name == name)
        ).first()
        if existing is not None:
            raise AccountExists(f"brand key {name!r} exists already", field="name")

    def _certify(
        self,
        brand: Brand,
        name: str,
        public: asserts.PublicKey,
        since: datetime,
        until: datetime | None,
        keystore_name: str | None,
    ) -> BrandKey:
        headers: dict[str, object] = {
            "account-id": brand.account_id,
            "name": name,
            "public-key-sha3-384": public.id,
            "since": asserts.format_time(since),
        }
        if until is not None:
            headers["until"] = asserts.format_time(until)
        self._sign_as_root("account-key", headers, public.encoded)
        key = BrandKey(
            brand_id=brand.account_id,
            name=name,
            key_id=public.id,
            keystore_name=keystore_name,
            since=since,
            until=until,
        )
        self._session.add(key)
        self._session.flush()
        return key

    def generate_key(self, account_id: str, name: str, bits: int = 4096) -> BrandKey:
        """A key generated and held in the key store, certified by the root."""
        brand = self.get(account_id)
        self._check_key_name(account_id, name)
        # key-store names are lower case; account ids are not
        digest = hashlib.sha256(account_id.encode()).hexdigest()[:16]
        stored = f"brand-{digest}-{name}"
        self._keystore.generate(stored, bits)
        since = utcnow().replace(microsecond=0)
        return self._certify(brand, name, self._keystore.public_key(stored), since, None, stored)

    def register_key(self, account_id: str, request_text: bytes) -> BrandKey:
        """Certify a key the brand holds itself, from ``snap export-key --account=ID NAME``."""
        brand = self.get(account_id)
        try:
            request = asserts.decode(request_text)
        except asserts.DecodeError as e:
            raise AccountRuleViolation(f"not an account-key-request: {e}", field="body") from e
        if not isinstance(request, asserts.AccountKeyRequest):
            raise AccountRuleViolation(
                f"expected an account-key-request, got {request.type_name}", field="body"
            )
        if request.account_id != account_id:
            raise AccountRuleViolation(
                f"the request is for account {request.account_id!r}, not {account_id!r}",
                field="account-id",
            )
        if request.sign_key_id != request.key_id:
            raise AccountRuleViolation(
                "the request must be signed by the key it registers", field="body"
            )
        try:
            self._trust.check(request)
        except asserts.AssertsError as e:
            raise AccountRuleViolation(f"account-key-request refused: {e}", field="body") from e
        self._check_key_name(account_id, request.name)
        return self._certify(
            brand,
            request.name,
            request.public_key,
            request.validity.since,
            request.validity.until,
            None,
        )

    def dependent_models(self, key: BrandKey) -> list[str]:
        """Models (``brand/model``) signed by the key: devices still rely on them."""
        models = self._trust.find_many("model", {"sign-key-sha3-384": key.key_id})
        return sorted(f"{m.header_str('brand-id')}/{m.header_str('model')}" for m in models)

    def _guard(self, key: BrandKey, confirm: str, force: bool) -> None:
        if confirm != key.name:
            raise AccountRuleViolation(
                f"confirm by repeating the key name {key.name!r}", field="confirm"
            )
        models = self.dependent_models(key)
        if models and not force:
            raise KeyInUse(
                f"key {key.name!r} signed models still in use ({', '.join(models)}); "
                "re-sign them with another key first, or force"
            )

    def disable_key(
        self, account_id: str, name: str, confirm: str, force: bool = False
    ) -> BrandKey:
        """Stop signing with a held key (its certificate stays valid for what it signed)."""
        key = self.key(account_id, name)
        self._guard(key, confirm, force)
        if key.keystore_name is not None:
            self._keystore.disable(key.keystore_name)
        key.state = "disabled"
        self._session.flush()
        return key

    def revoke_key(self, account_id: str, name: str, confirm: str, force: bool = False) -> BrandKey:
        """End the key's validity now: a new account-key revision with ``until``."""
        key = self.key(account_id, name)
        self._guard(key, confirm, force)
        current = self._trust.find("account-key", (key.key_id,))
        assert isinstance(current, asserts.AccountKey)
        # a second after "since" at least, since "until" must not precede it
        until = max(utcnow().replace(microsecond=0), key.since + timedelta(seconds=1))
        headers: dict[str, object] = {
            "account-id": account_id,
            "name": key.name,
            "public-key-sha3-384": key.key_id,
            "since": asserts.format_time(key.since),
            "until": asserts.format_time(until),
            "revision": str(current.revision + 1),
        }
        self._sign_as_root("account-key", headers, current.public_key.encoded)
        if key.keystore_name is not None:
            self._keystore.disable(key.keystore_name)
        key.state, key.until = "revoked", until
        self._session.flush()
        return key
