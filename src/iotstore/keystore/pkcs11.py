"""Keys held by a PKCS#11 token (an HSM, or SoftHSM2 in tests).

Layout on the token, per key called ``name`` with snapd key id ``K``:

* an RSA private key: ``CKA_LABEL`` = name, ``CKA_ID`` = K (ASCII), token
  object, private, ``CKA_SENSITIVE`` and not ``CKA_EXTRACTABLE``, sign only;
* the matching public key with the same label and id;
* a private ``CKO_DATA`` object, ``CKA_APPLICATION`` = ``iotstore-keystore``,
  ``CKA_LABEL`` = name, whose value is JSON ``{"v", "key-id", "bits",
  "created"}``: PKCS#11 has no creation time attribute, and only keys with
  this object belong to the store (other objects on the token are ignored).

Disabling sets ``CKA_SIGN`` false on the private key, so the token itself
refuses to sign with it (CKR_KEY_FUNCTION_NOT_PERMITTED), not just this
code. The store offers no way back; someone holding the user PIN and a
generic PKCS#11 tool could set the flag again, as they could use the key.

Signatures are raw ``CKM_RSA_PKCS`` over the SHA-512 DigestInfo, which is
byte for byte what ``cryptography`` makes (PKCS#1 v1.5 is deterministic),
and is the split snapd's external key manager uses.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pkcs11
from cryptography.hazmat.primitives.asymmetric import rsa
from pkcs11.constants import Attribute, MechanismFlag, ObjectClass
from pkcs11.exceptions import (
    MultipleObjectsReturned,
    MultipleTokensReturned,
    NoSuchKey,
    NoSuchToken,
    PinIncorrect,
    PKCS11Error,
)
from pkcs11.mechanisms import KeyType, Mechanism
from pkcs11.types import Object, Session, SignMixin, Token

from iotstore.asserts.keys import PrivateKey, PublicKey

from ._common import (
    SHA512_DIGEST_INFO_PREFIX,
    StoreSigner,
    check_bits,
    check_name,
    load_rsa_pem,
    utcnow,
)
from .errors import HSMError, KeyDisabled, KeyExists, KeyNotFound
from .interfaces import KeyInfo

__all__ = ["PKCS11KeyStore"]

_BACKEND = "pkcs11"
_APPLICATION = "iotstore-keystore"
_METADATA_VERSION = 1

# C_Login state is per process and per token, and python-pkcs11 logs out when
# any logged-in session closes; two stores on one token would log each other
# out, so only one may be open at a time.
_open_tokens: set[tuple[str, bytes]] = set()
_open_tokens_lock = threading.Lock()


def _detail(e: PKCS11Error) -> str:
    # Subclasses name the CKR_ code; the base class carries "Unmapped error code 0x..".
    return str(e) if type(e) is PKCS11Error and str(e) else type(e).__name__


@contextlib.contextmanager
def _hsm(action: str) -> Iterator[None]:
    try:
        yield
    except PKCS11Error as e:
        raise HSMError(f"{action}: the token reported {_detail(e)}") from e


def _int_bytes(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8 or 1, "big")


class PKCS11KeyStore:
    """A :class:`~iotstore.keystore.KeyStore` on a PKCS#11 token.

    One read-write session, logged in as the user, is opened per store and
    guarded by a lock: python-pkcs11 sessions are not thread safe. Private
    keys never leave the token.
    """

    def __init__(self, module_path: str | os.PathLike[str], token_label: str, pin: str) -> None:
        """Load ``module_path``, find the token labelled ``token_label`` and log in with ``pin``.

        Raises :class:`HSMError` when the module cannot be loaded, there is no
        (or more than one) such token, the PIN is refused, or another store
        in this process already has the token open.
        """
        self._module = os.fspath(module_path)
        self._token_label = token_label
        self._lock = threading.RLock()
        self._key_ids: dict[str, str] = {}
        self._private: dict[str, Object] = {}
        self._public: dict[str, PublicKey] = {}
        self._session: Session | None = None
        token = self._find_token()
        self._token_key = (self._module, bytes(token.serial))
        with _open_tokens_lock:
            if self._token_key in _open_tokens:
                raise HSMError(
                    f'PKCS#11 token "{token_label}" is already open by another key store in'
                    " this process; share that one"
                )
            _open_tokens.add(self._token_key)
        try:
            self._session = token.open(rw=True, user_pin=pin)
        except PinIncorrect as e:
            self._release_token()
            raise HSMError(f'PKCS#11 token "{token_label}" refused the PIN') from e
        except PKCS11Error as e:
            self._release_token()
            raise HSMError(
                f'cannot log in to PKCS#11 token "{token_label}": the token reported {_detail(e)}'
            ) from e

    def generate(self, name: str, bits: int = 4096) -> KeyInfo:
        """Generate an RSA key pair on the token; see :meth:`KeyStore.generate`.

        The private key is created sensitive and non-extractable. Also raises
        :class:`HSMError`.
        """
        check_name(name)
        check_bits(bits)
        with self._lock, _hsm(f'cannot generate key "{name}"'):
            session = self._open_session()
            self._refuse_name(session, name)
            public_obj, private_obj = session.generate_keypair(
                KeyType.RSA,
                bits,
                store=True,
                label=name,
                # A throwaway id until the key id (a hash of the public key) is known.
                id=os.urandom(16),
                capabilities=MechanismFlag.SIGN | MechanismFlag.VERIFY,
                private_template={
                    Attribute.PRIVATE: True,
                    Attribute.SENSITIVE: True,
                    Attribute.EXTRACTABLE: False,
                    Attribute.MODIFIABLE: True,
                },
                public_template={Attribute.PRIVATE: False, Attribute.MODIFIABLE: True},
            )
            objects: builtins.list[Object] = [public_obj, private_obj]
            with self._undo_on_error(objects):
                public = self._public_from(public_obj)
                key_id = public.id
                public_obj[Attribute.ID] = key_id.encode("ascii")
                private_obj[Attribute.ID] = key_id.encode("ascii")
                return self._add_metadata(session, name, key_id, bits, objects)

    def import_pem(self, name: str, pem: bytes, password: bytes | None = None) -> KeyInfo:
        """Put an existing RSA key on the token; see :meth:`KeyStore.import_pem`.

        The private key object is created sensitive and non-extractable. Also
        raises :class:`HSMError`.
        """
        check_name(name)
        key = load_rsa_pem(name, pem, password)
        public = PublicKey.from_rsa(key.public_key())
        key_id = public.id
        with self._lock, _hsm(f'cannot import key "{name}"'):
            session = self._open_session()
            self._refuse_name(session, name)
            self._refuse_key_id(session, key_id)
            objects: builtins.list[Object] = []
            with self._undo_on_error(objects):
                objects.append(session.create_object(self._private_template(name, key_id, key)))
                pub = public.rsa.public_numbers()
                objects.append(
                    session.create_object(
                        {
                            Attribute.CLASS: ObjectClass.PUBLIC_KEY,
                            Attribute.KEY_TYPE: KeyType.RSA,
                            Attribute.TOKEN: True,
                            Attribute.PRIVATE: False,
                            Attribute.MODIFIABLE: True,
                            Attribute.LABEL: name,
                            Attribute.ID: key_id.encode("ascii"),
                            Attribute.VERIFY: True,
                            Attribute.ENCRYPT: False,
                            Attribute.WRAP: False,
                            Attribute.MODULUS: _int_bytes(pub.n),
                            Attribute.PUBLIC_EXPONENT: _int_bytes(pub.e),
                        }
                    )
                )
                return self._add_metadata(session, name, key_id, key.key_size, objects)

    def get(self, name: str) -> KeyInfo:
        """Return key ``name``; see :meth:`KeyStore.get`. Also raises :class:`HSMError`."""
        check_name(name)
        with self._lock, _hsm(f'cannot read key "{name}"'):
            return self._info(self._open_session(), name)

    def find_by_id(self, key_id: str) -> KeyInfo:
        """Return the key with snapd key id ``key_id``; see :meth:`KeyStore.find_by_id`.

        Also raises :class:`HSMError`.
        """
        with self._lock, _hsm(f"cannot look up key {key_id!r}"):
            session = self._open_session()
            for meta in self._metadata(session):
                name, key_id_, _, _ = self._parse_metadata(meta)
                if key_id_ == key_id:
                    return self._info(session, name)
        raise KeyNotFound(f"no key with id {key_id!r}")

    def list(self) -> builtins.list[KeyInfo]:
        """Return every key sorted by name; see :meth:`KeyStore.list`.

        Also raises :class:`HSMError`.
        """
        with self._lock, _hsm("cannot list keys"):
            session = self._open_session()
            names = [self._parse_metadata(meta)[0] for meta in self._metadata(session)]
            return [self._info(session, name) for name in sorted(names)]

    def signer(self, name: str) -> PrivateKey:
        """Return a signer for key ``name``; see :meth:`KeyStore.signer`.

        Also raises :class:`HSMError`.
        """
        info = self.get(name)
        if info.disabled:
            raise KeyDisabled(f'key "{name}" is disabled and cannot sign')
        public = self.public_key(name)
        return StoreSigner(_BACKEND, public, lambda digest: self._sign(name, digest))

    def disable(self, name: str) -> KeyInfo:
        """Clear ``CKA_SIGN`` on key ``name``; see :meth:`KeyStore.disable`.

        Also raises :class:`HSMError`, for instance when the token refuses to
        change the attribute.
        """
        check_name(name)
        with self._lock, _hsm(f'cannot disable key "{name}"'):
            session = self._open_session()
            private = self._private_key(session, name)
            if private[Attribute.SIGN]:
                private[Attribute.SIGN] = False
            return self._info(session, name)

    def delete(self, name: str) -> None:
        """Destroy the key pair and metadata of ``name``; see :meth:`KeyStore.delete`.

        Also raises :class:`HSMError`.
        """
        check_name(name)
        with self._lock, _hsm(f'cannot delete key "{name}"'):
            session = self._open_session()
            key_id = self._key_id(session, name)
            ident = key_id.encode("ascii")
            objects = [
                *builtins.list(
                    session.get_objects(
                        {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.ID: ident}
                    )
                ),
                *builtins.list(
                    session.get_objects(
                        {Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.ID: ident}
                    )
                ),
                *self._metadata(session, name),
            ]
            for obj in objects:
                obj.destroy()
            self._key_ids.pop(name, None)
            self._private.pop(key_id, None)
            self._public.pop(key_id, None)

    def public_key(self, name: str) -> PublicKey:
        """Return the public key of ``name``; see :meth:`KeyStore.public_key`.

        Also raises :class:`HSMError`.
        """
        check_name(name)
        with self._lock, _hsm(f'cannot read the public key of "{name}"'):
            session = self._open_session()
            key_id = self._key_id(session, name)
            public = self._public.get(key_id)
            if public is None:
                obj = self._one(
                    session, ObjectClass.PUBLIC_KEY, key_id, f'the public key of "{name}"'
                )
                public = self._public[key_id] = self._public_from(obj)
            return public

    def close(self) -> None:
        """Log out and close the session; closing twice is harmless.

        Raises :class:`HSMError` if the token fails to close the session.
        """
        with self._lock:
            session, self._session = self._session, None
            self._private.clear()
            if session is None:
                return
            try:
                with _hsm(f'cannot close the session on token "{self._token_label}"'):
                    session.close()
            finally:
                self._release_token()

    def __repr__(self) -> str:
        return f"PKCS11KeyStore(backend={_BACKEND!r}, token={self._token_label!r})"

    def _find_token(self) -> Token:
        where = f"in PKCS#11 module {self._module}"
        try:
            lib = pkcs11.lib(self._module)
            return lib.get_token(token_label=self._token_label)
        except NoSuchToken as e:
            raise HSMError(f'no token labelled "{self._token_label}" {where}') from e
        except MultipleTokensReturned as e:
            raise HSMError(f'several tokens labelled "{self._token_label}" {where}') from e
        except PKCS11Error as e:
            raise HSMError(f"cannot use PKCS#11 module {self._module}: {_detail(e)}") from e

    def _release_token(self) -> None:
        with _open_tokens_lock:
            _open_tokens.discard(self._token_key)

    def _open_session(self) -> Session:
        if self._session is None:
            raise HSMError("this PKCS#11 key store is closed")
        return self._session

    def _sign(self, name: str, digest: bytes) -> bytes:
        with self._lock, _hsm(f'cannot sign with key "{name}"'):
            session = self._open_session()
            private = self._private_key(session, name)
            try:
                enabled = private[Attribute.SIGN]
            except PKCS11Error:
                # The cached handle went stale (object deleted behind our back): look again.
                private = self._private_key(session, name, fresh=True)
                enabled = private[Attribute.SIGN]
            if not enabled:
                raise KeyDisabled(f'key "{name}" is disabled and cannot sign')
            if not isinstance(private, SignMixin):
                # python-pkcs11 picks an object's methods from CKA_SIGN when it is found;
                # this handle was found while the flag was off.
                private = self._private_key(session, name, fresh=True)
            if not isinstance(private, SignMixin):
                raise HSMError(f'the private key of "{name}" cannot sign on this token')
            signature: bytes = private.sign(
                SHA512_DIGEST_INFO_PREFIX + digest, mechanism=Mechanism.RSA_PKCS
            )
            return signature

    @contextlib.contextmanager
    def _undo_on_error(self, objects: builtins.list[Object]) -> Iterator[None]:
        try:
            yield
        except BaseException:
            # Best effort: leave no half-made key behind; the original error is what matters.
            for obj in objects:
                with contextlib.suppress(PKCS11Error):
                    obj.destroy()
            raise

    def _add_metadata(
        self, session: Session, name: str, key_id: str, bits: int, objects: builtins.list[Object]
    ) -> KeyInfo:
        created = utcnow()
        value = {
            "v": _METADATA_VERSION,
            "key-id": key_id,
            "bits": bits,
            "created": created.isoformat(),
        }
        objects.append(
            session.create_object(
                {
                    Attribute.CLASS: ObjectClass.DATA,
                    Attribute.TOKEN: True,
                    Attribute.PRIVATE: True,
                    Attribute.MODIFIABLE: False,
                    Attribute.APPLICATION: _APPLICATION,
                    Attribute.LABEL: name,
                    Attribute.VALUE: json.dumps(value, sort_keys=True).encode("utf-8"),
                }
            )
        )
        return KeyInfo(name, key_id, bits, created, disabled=False, backend=_BACKEND)

    @staticmethod
    def _private_template(name: str, key_id: str, key: rsa.RSAPrivateKey) -> dict[Attribute, Any]:
        numbers = key.private_numbers()
        return {
            Attribute.CLASS: ObjectClass.PRIVATE_KEY,
            Attribute.KEY_TYPE: KeyType.RSA,
            Attribute.TOKEN: True,
            Attribute.PRIVATE: True,
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False,
            Attribute.MODIFIABLE: True,
            Attribute.LABEL: name,
            Attribute.ID: key_id.encode("ascii"),
            Attribute.SIGN: True,
            Attribute.DECRYPT: False,
            Attribute.UNWRAP: False,
            Attribute.DERIVE: False,
            Attribute.MODULUS: _int_bytes(numbers.public_numbers.n),
            Attribute.PUBLIC_EXPONENT: _int_bytes(numbers.public_numbers.e),
            Attribute.PRIVATE_EXPONENT: _int_bytes(numbers.d),
            Attribute.PRIME_1: _int_bytes(numbers.p),
            Attribute.PRIME_2: _int_bytes(numbers.q),
            Attribute.EXPONENT_1: _int_bytes(numbers.dmp1),
            Attribute.EXPONENT_2: _int_bytes(numbers.dmq1),
            Attribute.COEFFICIENT: _int_bytes(numbers.iqmp),
        }

    @staticmethod
    def _public_from(obj: Object) -> PublicKey:
        n = int.from_bytes(obj[Attribute.MODULUS], "big")
        e = int.from_bytes(obj[Attribute.PUBLIC_EXPONENT], "big")
        return PublicKey.from_rsa(rsa.RSAPublicNumbers(e, n).public_key())

    def _metadata(self, session: Session, name: str | None = None) -> builtins.list[Object]:
        attrs: dict[Attribute, Any] = {
            Attribute.CLASS: ObjectClass.DATA,
            Attribute.APPLICATION: _APPLICATION,
        }
        if name is not None:
            attrs[Attribute.LABEL] = name
        # Drain the search at once: a session allows one active C_FindObjects.
        return builtins.list(session.get_objects(attrs))

    def _parse_metadata(self, meta: Object) -> tuple[str, str, int, datetime]:
        name: str = meta[Attribute.LABEL]
        try:
            value = json.loads(bytes(meta[Attribute.VALUE]))
            if value["v"] != _METADATA_VERSION:
                raise ValueError("unknown metadata version")
            key_id, bits = str(value["key-id"]), int(value["bits"])
            created = datetime.fromisoformat(value["created"])
        except (ValueError, KeyError, TypeError) as e:
            raise HSMError(f'the token holds unreadable metadata for key "{name}"') from e
        return name, key_id, bits, created

    def _key_id(self, session: Session, name: str) -> str:
        key_id = self._key_ids.get(name)
        if key_id is None:
            metas = self._metadata(session, name)
            if not metas:
                raise KeyNotFound(f'no key named "{name}"')
            key_id = self._key_ids[name] = self._parse_metadata(metas[0])[1]
        return key_id

    def _info(self, session: Session, name: str) -> KeyInfo:
        metas = self._metadata(session, name)
        if not metas:
            raise KeyNotFound(f'no key named "{name}"')
        _, key_id, bits, created = self._parse_metadata(metas[0])
        private = self._private_key(session, name)
        disabled = not private[Attribute.SIGN]
        return KeyInfo(name, key_id, bits, created, disabled=disabled, backend=_BACKEND)

    def _private_key(self, session: Session, name: str, *, fresh: bool = False) -> Object:
        key_id = self._key_id(session, name)
        private = None if fresh else self._private.get(key_id)
        if private is None:
            private = self._private[key_id] = self._one(
                session, ObjectClass.PRIVATE_KEY, key_id, f'the private key of "{name}"'
            )
        return private

    @staticmethod
    def _one(session: Session, object_class: ObjectClass, key_id: str, what: str) -> Object:
        try:
            return session.get_key(object_class, KeyType.RSA, id=key_id.encode("ascii"))
        except NoSuchKey as e:
            raise HSMError(f"the token has lost {what}") from e
        except MultipleObjectsReturned as e:
            raise HSMError(f"the token holds several copies of {what}") from e

    def _refuse_name(self, session: Session, name: str) -> None:
        # Any key object with this label counts, ours or not, so labels stay unambiguous.
        if self._metadata(session, name) or builtins.list(
            session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: name})
        ):
            raise KeyExists(f'a key named "{name}" already exists')

    def _refuse_key_id(self, session: Session, key_id: str) -> None:
        for meta in self._metadata(session):
            other, other_id, _, _ = self._parse_metadata(meta)
            if other_id == key_id:
                raise KeyExists(f'key {key_id} is already stored as "{other}"')
        found = session.get_objects(
            {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.ID: key_id.encode("ascii")}
        )
        if builtins.list(found):
            raise KeyExists(f"key {key_id} is already on the token under another label")
