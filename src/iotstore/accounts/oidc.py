"""OpenID Connect relying party: authorization code + PKCE (S256) against one issuer.

:class:`OidcClient` discovers the provider (``/.well-known/openid-configuration``),
builds the authorization request, exchanges the code and checks the ID token
(signature against the provider's JWKS, issuer, audience, expiry, nonce) with
joserfc, authlib's JOSE library. It never touches the database: the web edge
turns the :class:`OidcIdentity` it returns into an account
(:meth:`AccountService.from_oidc`) inside its own transaction.

What the browser carries between the two legs (state, nonce, PKCE verifier,
where to go afterwards) is a :class:`PendingLogin`, sealed with an HMAC key the
caller derives from the deployment secret, so it cannot be forged or altered.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import httpx
from joserfc import jwt
from joserfc.errors import ExpiredTokenError, InvalidKeyIdError, JoseError, MissingClaimError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry
from joserfc.jwt import ClaimsOption

from iotstore.errors import InvalidInput, IotstoreError
from iotstore.settings import OidcSettings

__all__ = [
    "LOGIN_LIFETIME",
    "OidcClient",
    "OidcError",
    "OidcIdentity",
    "OidcUnavailable",
    "PendingLogin",
]

LOGIN_LIFETIME = 600
"""Seconds a started sign-in stays valid (the sealed state's lifetime)."""

# Asymmetric algorithms only: an HS256 ID token would be keyed by the client
# secret, "none" is unsigned, and "EdDSA" is deprecated in favour of "Ed25519".
_ALGORITHMS = (
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "Ed25519",
)  # fmt: skip
_SCOPE = "openid email profile"
_METADATA_TTL = 3600.0
_CLOCK_LEEWAY = 60
_MAX_RESPONSE = 256 * 1024
_MAX_SEALED = 4096
# client authentication at the token endpoint (names, not secrets)
_BASIC = "client_secret_basic"
_POST = "client_secret_post"


class OidcError(InvalidInput):
    """The sign-in is refused: forged, replayed or expired state, a bad ID token, or the
    provider said no. The message is safe to show."""

    code = "sso-failed"


class OidcUnavailable(IotstoreError):
    """The provider cannot be reached or answers something that is not OpenID Connect."""

    code = "sso-unavailable"


@dataclass(frozen=True)
class OidcIdentity:
    """A person as the provider vouches for them, after every check passed."""

    issuer: str
    subject: str
    email: str
    email_verified: bool
    display_name: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class PendingLogin:
    """One started sign-in: what the callback must see again, valid until ``expires``."""

    issuer: str
    state: str
    nonce: str
    verifier: str
    next: str
    expires: int

    @classmethod
    def new(cls, issuer: str, next_path: str, now: float | None = None) -> PendingLogin:
        """Fresh random state, nonce and PKCE verifier (86 characters, RFC 7636 allows 43-128)."""
        return cls(
            issuer=issuer,
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            verifier=secrets.token_urlsafe(64),
            next=next_path,
            expires=int(now if now is not None else time.time()) + LOGIN_LIFETIME,
        )

    @property
    def code_challenge(self) -> str:
        """The S256 challenge of the verifier."""
        return _b64(hashlib.sha256(self.verifier.encode("ascii")).digest())

    def seal(self, key: bytes) -> str:
        """``payload.mac``: base64url JSON and its HMAC-SHA256 under ``key``."""
        payload = _b64(
            json.dumps(
                {
                    "iss": self.issuer,
                    "state": self.state,
                    "nonce": self.nonce,
                    "verifier": self.verifier,
                    "next": self.next,
                    "exp": self.expires,
                },
                separators=(",", ":"),
            ).encode()
        )
        return f"{payload}.{_b64(_mac(key, payload))}"

    @classmethod
    def unseal(cls, sealed: str, key: bytes, now: float | None = None) -> PendingLogin:
        """The sign-in behind a sealed value; raises :class:`OidcError` if it was altered,
        is malformed or has expired."""
        expired = OidcError("this sign-in has expired or was already used; start again")
        if not sealed or len(sealed) > _MAX_SEALED:
            raise expired
        payload, _, mac = sealed.partition(".")
        try:
            good = hmac.compare_digest(_unb64(mac), _mac(key, payload))
            fields = json.loads(_unb64(payload)) if good else None
        except (ValueError, UnicodeDecodeError) as e:
            raise expired from e
        if not isinstance(fields, dict):
            raise expired
        try:
            pending = cls(
                issuer=_text(fields["iss"]),
                state=_text(fields["state"]),
                nonce=_text(fields["nonce"]),
                verifier=_text(fields["verifier"]),
                next=_text(fields["next"]),
                expires=int(fields["exp"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise expired from e
        if pending.expires <= (now if now is not None else time.time()):
            raise expired
        return pending


def _mac(key: bytes, payload: str) -> bytes:
    return hmac.new(key, b"iotstore-oidc-login." + payload.encode("ascii"), "sha256").digest()


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError("not a string")
    return value


def _printable(value: str, limit: int = 200) -> str:
    """Provider-supplied text made safe to echo: printable ASCII, bounded length."""
    cleaned = "".join(c if " " <= c <= "~" else "?" for c in value)
    return cleaned[:limit]


@dataclass(frozen=True)
class _Metadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    token_auth: str  # _BASIC or _POST
    algorithms: tuple[str, ...]
    fetched: float


class OidcClient:
    """The deployment's relying party for one provider; safe to share between threads.

    Discovery and the JWKS are cached (an unknown key id refetches the JWKS once).
    ``allow_http`` permits a plain-http issuer (loopback test providers, development).
    """

    def __init__(
        self,
        settings: OidcSettings,
        redirect_uri: str,
        *,
        allow_http: bool = False,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.redirect_uri = redirect_uri
        self._allow_http = allow_http or _is_loopback(settings.issuer)
        self._timeout = timeout
        self._transport = transport
        self._clock = clock
        self._lock = threading.Lock()
        self._metadata: _Metadata | None = None
        self._keys: KeySet | None = None

    # -- the two legs -------------------------------------------------------------------

    def begin(self, next_path: str) -> tuple[str, PendingLogin]:
        """The provider URL to send the browser to, and the sign-in to keep (sealed)."""
        meta = self._discover()
        pending = PendingLogin.new(self.settings.issuer, next_path, self._clock())
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.settings.client_id,
                "redirect_uri": self.redirect_uri,
                "scope": _SCOPE,
                "state": pending.state,
                "nonce": pending.nonce,
                "code_challenge": pending.code_challenge,
                "code_challenge_method": "S256",
            }
        )
        separator = "&" if urlsplit(meta.authorization_endpoint).query else "?"
        return f"{meta.authorization_endpoint}{separator}{query}", pending

    def finish(self, pending: PendingLogin, params: Mapping[str, str]) -> OidcIdentity:
        """Check the provider's answer against ``pending`` and return who signed in.

        Raises :class:`OidcError` for anything forged, replayed or refused, and
        :class:`OidcUnavailable` when the provider cannot be used.
        """
        if pending.issuer != self.settings.issuer:
            raise OidcError("this sign-in was started for another identity provider; start again")
        if not hmac.compare_digest(params.get("state", "").encode(), pending.state.encode()):
            raise OidcError("the sign-in state does not match; start again")
        meta = self._discover()
        # RFC 9207: a provider that names itself must be ours (mix-up attacks)
        if "iss" in params and params["iss"] != meta.issuer:
            raise OidcError("the answer comes from another identity provider")
        if params.get("error"):
            error = _printable(params["error"], 64)
            detail = _printable(params.get("error_description", ""))
            raise OidcError(
                f"the identity provider refused the sign-in: {error}"
                + (f" ({detail})" if detail else "")
            )
        code = params.get("code", "")
        if not code:
            raise OidcError("the identity provider sent no authorization code")
        tokens = self._exchange(meta, code, pending.verifier)
        claims = self._check_id_token(meta, tokens["id_token"], pending.nonce)
        access_token = tokens.get("access_token")
        if "email" not in claims and meta.userinfo_endpoint and isinstance(access_token, str):
            claims = {**self._userinfo(meta, access_token, claims["sub"]), **claims}
        return _identity(meta.issuer, claims)

    # -- provider calls -----------------------------------------------------------------

    def _client(self) -> httpx.Client:
        return httpx.Client(
            timeout=self._timeout, transport=self._transport, follow_redirects=False
        )

    def _get_json(self, url: str, what: str, headers: Mapping[str, str] | None = None) -> Any:
        try:
            with self._client() as client:
                response = client.get(
                    url, headers={"accept": "application/json", **(headers or {})}
                )
        except httpx.HTTPError as e:
            raise OidcUnavailable(f"the identity provider's {what} cannot be fetched") from e
        if response.status_code != 200:
            raise OidcUnavailable(
                f"the identity provider's {what} answered HTTP {response.status_code}"
            )
        return _json_object(response, what)

    def _discover(self) -> _Metadata:
        with self._lock:
            cached = self._metadata
        if cached is not None and self._clock() - cached.fetched < _METADATA_TTL:
            return cached
        issuer = self.settings.issuer
        doc = self._get_json(
            issuer.rstrip("/") + "/.well-known/openid-configuration", "discovery document"
        )
        if doc.get("issuer") != issuer:
            raise OidcUnavailable(
                f"the discovery document names issuer {_printable(str(doc.get('issuer')))!r},"
                f" not the configured {issuer!r}"
            )
        # OpenID Connect Discovery: client_secret_basic when the provider lists none
        methods = doc.get("token_endpoint_auth_methods_supported") or [_BASIC]
        if _BASIC in methods:
            token_auth = _BASIC
        elif _POST in methods:
            token_auth = _POST
        else:
            raise OidcUnavailable(
                "the identity provider accepts no client secret at its token endpoint"
            )
        challenges = doc.get("code_challenge_methods_supported")
        if isinstance(challenges, list) and "S256" not in challenges:
            raise OidcUnavailable("the identity provider does not support PKCE with S256")
        offered = doc.get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = tuple(a for a in _ALGORITHMS if a in offered)
        if not algorithms:
            raise OidcUnavailable(
                "the identity provider signs ID tokens with no accepted algorithm"
            )
        userinfo = doc.get("userinfo_endpoint")
        meta = _Metadata(
            issuer=issuer,
            authorization_endpoint=self._endpoint(doc, "authorization_endpoint"),
            token_endpoint=self._endpoint(doc, "token_endpoint"),
            jwks_uri=self._endpoint(doc, "jwks_uri"),
            userinfo_endpoint=self._endpoint(doc, "userinfo_endpoint") if userinfo else None,
            token_auth=token_auth,
            algorithms=algorithms,
            fetched=self._clock(),
        )
        with self._lock:
            self._metadata = meta
        return meta

    def _endpoint(self, doc: Mapping[str, Any], name: str) -> str:
        url = doc.get(name)
        if not isinstance(url, str):
            raise OidcUnavailable(f"the discovery document has no {name}")
        parts = urlsplit(url)
        if not parts.netloc or parts.fragment or parts.scheme not in ("https", "http"):
            raise OidcUnavailable(f"the discovery document's {name} is not an absolute URL")
        if parts.scheme == "http" and not self._allow_http:
            raise OidcUnavailable(f"the identity provider's {name} is not https")
        return url

    def _key_set(self, meta: _Metadata, refresh: bool) -> KeySet:
        with self._lock:
            cached = None if refresh else self._keys
        if cached is not None:
            return cached
        doc = self._get_json(meta.jwks_uri, "key set")
        keys = doc.get("keys")
        if not isinstance(keys, list):
            raise OidcUnavailable("the identity provider's key set has no keys")
        usable = [
            k for k in keys
            if isinstance(k, dict) and k.get("use", "sig") == "sig"
            and k.get("kty") in ("RSA", "EC", "OKP")
        ]  # fmt: skip
        try:
            key_set = KeySet.import_key_set({"keys": usable})
        except (JoseError, ValueError, TypeError) as e:
            raise OidcUnavailable("the identity provider's key set cannot be read") from e
        with self._lock:
            self._keys = key_set
        return key_set

    def _exchange(self, meta: _Metadata, code: str, verifier: str) -> dict[str, Any]:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": verifier,
        }
        headers = {"accept": "application/json"}
        client_id, secret = self.settings.client_id, self.settings.client_secret
        if meta.token_auth == _BASIC:
            # RFC 6749 2.3.1: both parts are form-encoded before the Basic encoding
            pair = f"{quote(client_id, safe='')}:{quote(secret, safe='')}"
            headers["authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            form |= {"client_id": client_id, "client_secret": secret}
        try:
            with self._client() as client:
                response = client.post(meta.token_endpoint, data=form, headers=headers)
        except httpx.HTTPError as e:
            raise OidcUnavailable("the identity provider's token endpoint cannot be reached") from e
        if response.status_code >= 500:
            raise OidcUnavailable(
                f"the identity provider's token endpoint answered HTTP {response.status_code}"
            )
        body = _json_object(response, "token response")
        if response.status_code != 200:
            error = _printable(str(body.get("error", "error")), 64)
            detail = _printable(str(body.get("error_description", "")))
            raise OidcError(
                f"the identity provider refused the authorization code: {error}"
                + (f" ({detail})" if detail else "")
            )
        if not isinstance(body.get("id_token"), str):
            raise OidcError("the identity provider returned no ID token")
        return body

    def _check_id_token(self, meta: _Metadata, id_token: str, nonce: str) -> dict[str, Any]:
        registry = JWSRegistry(algorithms=list(meta.algorithms), strict_check_header=False)
        try:
            try:
                token = jwt.decode(id_token, self._key_set(meta, refresh=False), registry=registry)
            except InvalidKeyIdError:
                # the provider rotated its keys since we cached them
                token = jwt.decode(id_token, self._key_set(meta, refresh=True), registry=registry)
        except InvalidKeyIdError as e:
            raise OidcError(
                "the ID token is signed with a key the provider does not publish"
            ) from e
        except JoseError as e:
            raise OidcError(f"the ID token's signature is not valid ({e.error})") from e
        except (ValueError, KeyError, TypeError) as e:
            raise OidcError("the ID token is malformed") from e
        claims = token.claims
        essential: ClaimsOption = {"essential": True}
        checks = jwt.JWTClaimsRegistry(
            now=int(self._clock()),
            leeway=_CLOCK_LEEWAY,
            iss={"essential": True, "value": meta.issuer},
            aud={"essential": True, "value": self.settings.client_id},
            sub=essential,
            exp=essential,
            iat=essential,
            nonce=essential,
        )
        try:
            checks.validate(claims)
        except ExpiredTokenError as e:
            raise OidcError("the ID token has expired") from e
        except MissingClaimError as e:
            raise OidcError(f"the ID token lacks the {e.description} claim") from e
        except JoseError as e:
            raise OidcError(f"the ID token is not valid ({e.description})") from e
        audience = claims["aud"]
        multiple = isinstance(audience, list) and len(audience) > 1
        if multiple and claims.get("azp") != self.settings.client_id:
            raise OidcError("the ID token was issued to another client")
        if not hmac.compare_digest(str(claims["nonce"]).encode(), nonce.encode()):
            raise OidcError("the ID token's nonce does not match this sign-in; start again")
        return claims

    def _userinfo(self, meta: _Metadata, access_token: str, subject: str) -> dict[str, Any]:
        assert meta.userinfo_endpoint is not None
        info: dict[str, Any] = self._get_json(
            meta.userinfo_endpoint, "userinfo endpoint", {"authorization": f"Bearer {access_token}"}
        )
        # OIDC Core 5.3.2: userinfo about anyone but the ID token's subject is ignored
        if info.get("sub") != subject:
            raise OidcError("the provider's userinfo describes another person")
        return info


def _json_object(response: httpx.Response, what: str) -> dict[str, Any]:
    if len(response.content) > _MAX_RESPONSE:
        raise OidcUnavailable(f"the identity provider's {what} is too large")
    try:
        body = response.json()
    except ValueError as e:
        raise OidcUnavailable(f"the identity provider's {what} is not JSON") from e
    if not isinstance(body, dict):
        raise OidcUnavailable(f"the identity provider's {what} is not a JSON object")
    return body


def _identity(issuer: str, claims: Mapping[str, Any]) -> OidcIdentity:
    email = claims.get("email")
    if not isinstance(email, str) or not email:
        raise OidcError("the identity provider shared no email address (grant the email scope)")
    verified = claims.get("email_verified")
    # some providers send the JSON string "true"; anything else is unverified
    email_verified = verified is True or verified == "true"
    name = next(
        (
            v for k in ("name", "preferred_username", "nickname")
            if isinstance(v := claims.get(k), str) and v.strip()
        ),
        email,
    )  # fmt: skip
    display = "".join(c for c in name if c.isprintable()).strip()[:120] or email[:120]
    return OidcIdentity(
        issuer=issuer,
        subject=str(claims["sub"]),
        email=email,
        email_verified=email_verified,
        display_name=display,
    )


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
