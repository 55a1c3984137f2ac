"""Bad input gets a 4xx with the error body, never a 5xx, and leaves nothing half-written.

Malformed JSON, wrong content types, oversized bodies, unknown ids, duplicate
names, non-ASCII, NUL and overlong strings, invalid roles, the last
administrator, bad query parameters and bad credentials, on both backends.
Failed requests are checked to have changed no row of any table.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from iotstore.accounts.models import Brand
from iotstore.assertdb.models import StoredAssertion
from iotstore.stores.models import Membership, Store

from ._routes import Targets, app_routes
from ._support import Person, World, bearer, error_of, row_counts, unique

JSON = {"content-type": "application/json"}


@dataclass
class Site:
    """A brand store, a sub-store and an operator who administers them, on one backend."""

    world: World
    store: str
    substore: str
    admin: Person
    snap_id: str

    @property
    def client(self) -> httpx.Client:
        return self.world.client

    @property
    def h(self) -> dict[str, str]:
        return self.admin.headers


@pytest.fixture(scope="module")
def site(module_world: World) -> Site:
    f = module_world.factory
    _, store = f.brand()
    substore = f.substore(store)
    admin = f.person({store: ["admin", "publisher", "reviewer"]}, operator=True)
    return Site(module_world, store, substore, admin, f.snap(store))


@pytest.fixture
def unchanged(site: Site) -> Iterator[None]:
    """The test's requests all fail: afterwards every table has the rows it had."""
    before = row_counts(site.world.deployment)
    yield
    assert row_counts(site.world.deployment) == before


def _url(site: Site, path: str) -> str:
    values = Targets(site.store, site.admin.account_id, site.snap_id).path_values()
    for name, value in values.items():
        path = path.replace("{" + name + "}", value)
    return path


# every route whose body is a JSON document
BODY_ROUTES = [r for r in app_routes() if r.has_body and r.path.startswith("/api/")]


@pytest.mark.parametrize("route", BODY_ROUTES, ids=lambda r: r.id)
@pytest.mark.usefixtures("unchanged")
def test_malformed_bodies_are_refused(site: Site, route: Any) -> None:
    url = _url(site, route.path)
    bad: list[tuple[bytes, dict[str, str]]] = [
        (b'{"name": ', JSON),  # truncated
        (b"{'name': 'x'}", JSON),  # not JSON
        (b'{"name": "\xff\xfe"}', JSON),  # not UTF-8
        (b"[" * 50_000 + b"]" * 50_000, JSON),  # nested deeper than any parser recursion
        (b"[]", JSON),  # JSON, but not an object
        (b'"text"', JSON),
        (b"null", JSON),
        (b"", JSON),
        (b'{"no-such-field": 1, "and-another": [1, 2]}', JSON),  # unknown fields are refused
        (b"name=x", {"content-type": "application/x-www-form-urlencoded"}),
    ]
    for body, headers in bad:
        response = site.client.request(
            route.method, url, content=body, headers={**site.h, **headers}
        )
        error_of(response, (400, 415))


@pytest.mark.usefixtures("unchanged")
def test_wrong_content_type(site: Site) -> None:
    url = f"/api/v1/stores/{site.store}/substores"
    body = b'{"id": "ct-store", "name": "x", "kind": "product"}'
    for ctype in ("text/plain", "application/xml", "multipart/form-data; boundary=x", None):
        headers = {**site.h, **({"content-type": ctype} if ctype else {})}
        error_of(site.client.post(url, content=body, headers=headers), (400, 415))


def test_oversized_bodies_get_413(site: Site) -> None:
    before = row_counts(site.world.deployment)
    limit = site.world.deployment.settings.max_body_bytes
    url = f"/api/v1/stores/{site.store}"
    big = b'{"name": "' + b"x" * limit + b'"}'
    error = error_of(site.client.patch(url, content=big, headers={**site.h, **JSON}), 413)
    assert error["code"] == "too-large"
    # a lying Content-Length is refused before anything is read
    lying = {**site.h, **JSON, "content-length": str(limit + 1)}
    error_of(site.client.patch(url, content=b"{}", headers=lying), 413)

    # without Content-Length (chunked), the middleware counts what arrives
    class Chunks(httpx.AsyncByteStream, httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            yield from self._chunks()

        async def __aiter__(self) -> AsyncIterator[bytes]:
            for chunk in self._chunks():
                yield chunk

        @staticmethod
        def _chunks() -> Iterator[bytes]:
            yield b'{"name": "'
            for _ in range(limit // 65536 + 2):
                yield b"x" * 65536
            yield b'"}'

    request = site.client.build_request("PATCH", url, headers={**site.h, **JSON})
    request.stream = Chunks()
    request.headers.pop("content-length", None)
    request.headers["transfer-encoding"] = "chunked"
    error_of(site.client.send(request), 413)
    assert row_counts(site.world.deployment) == before
    # just under the limit is fine
    ok = b'{"name": "' + b"y" * 100 + b'"}'
    assert site.client.patch(url, content=ok, headers={**site.h, **JSON}).status_code == 200
    site.client.patch(url, json={"name": "Bad input store"}, headers=site.h)


@pytest.mark.usefixtures("unchanged")
def test_unknown_ids_get_404(site: Site) -> None:
    s, nobody, nothing = site.store, "N" * 32, "0" * 32
    member = f"/api/v1/stores/{s}/members/{nobody}"
    key = f"/api/v1/stores/{s}/brand/keys/no-such-key"
    calls: list[tuple[str, str, Any]] = [
        ("GET", "/api/v1/stores/no-such-store", None),
        ("PATCH", "/api/v1/stores/no-such-store", {"name": "x"}),
        (
            "POST",
            "/api/v1/stores/no-such-store/substores",
            {"id": "x1", "name": "x", "kind": "product"},
        ),
        ("PUT", f"{member}/roles/viewer", None),
        ("DELETE", f"{member}/roles/viewer", None),
        ("POST", f"{member}/role-change", {"from": "viewer", "to": "admin"}),
        ("POST", f"/api/v1/stores/{s}/includes", {"snap-id": nothing}),
        ("DELETE", f"/api/v1/stores/{s}/includes/{nothing}", None),
        ("DELETE", f"/api/v1/stores/{s}/excludes/{nothing}", None),
        ("POST", f"{key}/disable", {"confirm": "no-such-key"}),
        ("POST", f"{key}/revoke", {"confirm": "no-such-key"}),
        ("DELETE", f"/api/v1/tokens/{nothing}", None),
        ("GET", "/api/v1/no-such-endpoint", None),
    ]
    for method, url, body in calls:
        error_of(site.client.request(method, url, json=body, headers=site.h), 404)


def test_duplicate_names_get_409(site: Site) -> None:
    c, h = site.client, site.h
    subs = f"/api/v1/stores/{site.store}/substores"
    taken, username, email = unique("taken"), unique("dup"), f"{unique('dup')}@example.com"
    made = [
        c.post(subs, json={"id": taken, "name": "x", "kind": "product"}, headers=h),
        c.post(
            "/api/v1/brands",
            json={"username": username, "display-name": "D", "store-id": unique("d")},
            headers=h,
        ),
        c.post("/api/v1/accounts", json={"email": email, "display-name": "D"}, headers=h),
    ]
    assert [r.status_code for r in made] == [201, 201, 201], [r.text for r in made]
    before = row_counts(site.world.deployment)
    duplicates: list[tuple[str, dict[str, Any], str]] = [
        (subs, {"id": taken, "name": "y", "kind": "ecosystem"}, "id"),
        (
            f"/api/v1/stores/{site.substore}/substores",
            {"id": site.store, "name": "y", "kind": "product"},
            "id",
        ),
        (
            "/api/v1/brands",
            {"username": username, "display-name": "E", "store-id": unique("e")},
            "username",
        ),
        # addresses are compared case-insensitively
        ("/api/v1/accounts", {"email": email.upper(), "display-name": "E"}, "email"),
    ]
    for url, body, field in duplicates:
        error = error_of(c.post(url, json=body, headers=h), 409)
        assert error.get("field") == field, error
    assert row_counts(site.world.deployment) == before


def _brands_and_assertions(world: World) -> tuple[int, int, int]:
    with world.deployment.database.unit_of_work(write=False) as s:
        return (
            int(s.scalar(select(func.count(Brand.account_id))) or 0),
            int(s.scalar(select(func.count(StoredAssertion.id))) or 0),
            int(s.scalar(select(func.count(Store.id))) or 0),
        )


def test_a_failed_brand_creation_leaves_nothing(site: Site) -> None:
    c, h = site.client, site.h
    before, counts = row_counts(site.world.deployment), _brands_and_assertions(site.world)
    # the brand and its signed account assertion are made first; each of these fails later
    failing = [
        {"username": unique("half"), "display-name": "Half", "store-id": site.store},  # store taken
        {"username": unique("half"), "display-name": "Half", "store-id": "Not A Valid Id"},
        {
            "username": unique("half"),
            "display-name": "Half",
            "store-id": unique("h"),
            "admin-email": "not an email",
        },
    ]
    for body in failing:
        error_of(c.post("/api/v1/brands", json=body, headers=h), (400, 409))
        assert _brands_and_assertions(site.world) == counts, body
    assert row_counts(site.world.deployment) == before


def test_non_ascii_strings_round_trip(site: Site) -> None:
    c, h = site.client, site.h
    subs = f"/api/v1/stores/{site.store}/substores"
    for name in ("Ünïcødé Störe 店 🚀", "é" * 120, "\u202eright-to-left", "tab\tand newline\n"):
        store_id = unique("u")
        r = c.post(subs, json={"id": store_id, "name": name, "kind": "product"}, headers=h)
        assert r.status_code == 201, r.text
        assert c.get(f"/api/v1/stores/{store_id}", headers=h).json()["name"] == name
    email = f"ünï-{unique('c')}@exämple.com"
    r = c.post("/api/v1/accounts", json={"email": email, "display-name": "Zoë 🚀"}, headers=h)
    assert r.status_code == 201, r.text
    assert r.json()["display-name"] == "Zoë 🚀"
    r = c.post("/api/v1/tokens", json={"description": "clé 🔑"}, headers=h)
    assert r.status_code == 201 and r.json()["description"] == "clé 🔑"


def _substore(store_id: str, name: str = "x", kind: str = "product") -> dict[str, Any]:
    return {"id": store_id, "name": name, "kind": kind}


def _brand(**changes: Any) -> dict[str, Any]:
    return {"username": unique("b"), "display-name": "x", "store-id": unique("b"), **changes}


def _account(**changes: Any) -> dict[str, Any]:
    return {"email": f"{unique('a')}@example.com", "display-name": "x", **changes}


@pytest.mark.usefixtures("unchanged")
def test_invalid_and_overlong_strings_get_400(site: Site) -> None:
    subs = f"/api/v1/stores/{site.store}/substores"
    keys = f"/api/v1/stores/{site.store}/brand/keys"
    cases: list[tuple[str, str, dict[str, Any], str]] = [
        ("POST", subs, _substore("störe"), "id"),
        ("POST", subs, _substore("UPPER"), "id"),
        ("POST", subs, _substore("a" * 64), "id"),
        ("POST", subs, _substore("a--b"), "id"),
        ("POST", subs, _substore(unique("x"), name=""), "name"),
        ("POST", subs, _substore(unique("x"), name="é" * 121), "name"),
        ("POST", subs, _substore(unique("x"), kind="brand"), "kind"),
        ("POST", subs, _substore(unique("x"), kind="ü" * 5000), "kind"),
        ("PATCH", f"/api/v1/stores/{site.store}", {"private": "yes please"}, "private"),
        ("POST", "/api/v1/brands", _brand(username="brändé"), "username"),
        ("POST", "/api/v1/brands", _brand(**{"display-name": "x" * 121}), "display-name"),
        ("POST", "/api/v1/brands", _brand(**{"display-name": "   "}), "display-name"),
        ("POST", "/api/v1/brands", _brand(validation="trusted"), "validation"),
        ("POST", "/api/v1/accounts", _account(email="a" * 250 + "@example.com"), "email"),
        ("POST", "/api/v1/accounts", _account(email="not-an-address"), "email"),
        ("POST", "/api/v1/accounts", _account(**{"display-name": "bell\x07"}), "display-name"),
        ("POST", "/api/v1/accounts", _account(password="short"), "password"),
        ("POST", "/api/v1/tokens", {"description": "d" * 201}, "description"),
        ("POST", "/api/v1/tokens", {"permissions": ["store:everything"]}, "permissions"),
        ("POST", "/api/v1/tokens", {"expires-in": 1}, "expires-in"),
        ("POST", f"/api/v1/stores/{site.store}/includes", {"snap-id": "é" * 32}, "snap-id"),
        ("POST", keys, {"name": "Bad Name!", "bits": 2048}, "name"),
        ("POST", keys, {"name": "k", "bits": 1024}, "bits"),
    ]
    for method, url, body, field in cases:
        response = site.client.request(method, url, json=body, headers=site.h)
        error = error_of(response, 400)
        assert error.get("field") == field, (method, url, body, error)


def test_nul_characters_are_never_a_server_error(site: Site) -> None:
    # PostgreSQL cannot store NUL in text (400); SQLite can, and must give it back intact
    c, h = site.client, site.h
    before = row_counts(site.world.deployment)
    writes = [
        ("PATCH", f"/api/v1/stores/{site.substore}", {"name": "nul\x00name"}),
        ("POST", "/api/v1/tokens", {"description": "nul\x00"}),
        ("POST", "/api/v1/accounts", _account(email=f"nul\x00{unique('n')}@example.com")),
    ]
    for method, url, body in writes:
        r = c.request(method, url, json=body, headers=h)
        if site.world.backend == "postgresql":
            error_of(r, 400)
        else:
            assert r.status_code in (200, 201), r.text
            assert "\x00" in "".join(str(v) for v in r.json().values())
    if site.world.backend == "postgresql":
        assert row_counts(site.world.deployment) == before
    reads = [
        c.get("/api/v1/stores/nul%00store", headers=h),
        c.get("/api/v1/stores", params={"after": "a\x00"}, headers=h),
        c.get(f"/api/v1/stores/{site.store}/audit", params={"action": "x\x00"}, headers=h),
        c.delete("/api/v1/tokens/%00", headers=h),
        c.post(
            "/api/v1/tokens/password", json={"email": "a\x00@example.com", "password": "x" * 12}
        ),
    ]
    for r in reads:
        assert r.status_code < 500, r.text
        if r.status_code >= 400:
            error_of(r, r.status_code)


@pytest.mark.usefixtures("unchanged")
def test_odd_path_parameters_get_404(site: Site) -> None:
    c, h = site.client, site.h
    for store_id in ("a" * 5000, "%F0%9F%9A%80", "..%2F..%2Fetc", "%20", "UPPER", "-x-"):
        for suffix in ("", "/members", "/audit", "/brand/keys", "/catalogue"):
            r = c.get(f"/api/v1/stores/{store_id}{suffix}", headers=h)
            error_of(r, (400, 404))


@pytest.mark.usefixtures("unchanged")
def test_bad_query_parameters_get_400(site: Site) -> None:
    c, h, s = site.client, site.h, site.store
    cases = [
        ("/api/v1/stores", {"limit": "0"}),
        ("/api/v1/stores", {"limit": "501"}),
        ("/api/v1/stores", {"limit": "ten"}),
        ("/api/v1/stores", {"limit": "9" * 40}),
        ("/api/v1/stores", {"after": "x" * 129}),
        (f"/api/v1/stores/{s}/audit", {"since": "yesterday"}),
        (f"/api/v1/stores/{s}/audit", {"until": "2026-13-45T99:00:00Z"}),
        (f"/api/v1/stores/{s}/audit", {"format": "xml"}),
        (f"/api/v1/stores/{s}/audit", {"after": "-1"}),
        (f"/api/v1/stores/{s}/audit", {"action": "a" * 65}),
        (f"/api/v1/stores/{s}/members", {"after": "-5"}),
        (f"/api/v1/stores/{s}/catalogue", {"limit": "-1"}),
    ]
    for path, params in cases:
        error_of(c.get(path, params=params, headers=h), 400)


def _roles(site: Site, store: str, account_id: str) -> set[str]:
    with site.world.deployment.database.unit_of_work(write=False) as s:
        return set(
            s.scalars(
                select(Membership.role).where(
                    Membership.store_id == store, Membership.account_id == account_id
                )
            )
        )


def test_invalid_roles_are_refused_without_half_changes(site: Site) -> None:
    c, h, s = site.client, site.h, site.substore
    member = site.world.factory.person({s: "viewer"})
    before = row_counts(site.world.deployment)
    base = f"/api/v1/stores/{s}/members/{member.account_id}"
    for role in ("owner", "collaborator", "ADMIN", "", "é", "x" * 300):
        error_of(c.put(f"{base}/roles/{role}", headers=h), (400, 404, 405))
        error_of(c.delete(f"{base}/roles/{role}", headers=h), (400, 404, 405))
    # the change grants the new role first: a bad old role must undo that grant
    bad_old = {"from": "owner", "to": "publisher"}
    error = error_of(c.post(f"{base}/role-change", json=bad_old, headers=h), 400)
    assert error.get("field") == "role"
    error_of(c.post(f"{base}/role-change", json={"from": "viewer", "to": "root"}, headers=h), 400)
    error_of(c.post(f"{base}/role-change", json={"from": "viewer"}, headers=h), 400)
    assert _roles(site, s, member.account_id) == {"viewer"}
    assert row_counts(site.world.deployment) == before


def test_the_last_administrator_cannot_be_removed(site: Site) -> None:
    c, f = site.client, site.world.factory
    _, store = f.brand()
    admin = f.person({store: "admin"})
    before = row_counts(site.world.deployment)
    base = f"/api/v1/stores/{store}/members/{admin.account_id}"
    error = error_of(c.delete(f"{base}/roles/admin", headers=admin.headers), 409)
    assert error["code"] == "refused"
    # a change away from admin grants the new role first: the refusal must undo it
    r = c.post(f"{base}/role-change", json={"from": "admin", "to": "viewer"}, headers=admin.headers)
    assert error_of(r, 409)["code"] == "refused"
    assert _roles(site, store, admin.account_id) == {"admin"}
    assert row_counts(site.world.deployment) == before
    # with a second administrator it works
    other = f.person({store: "admin"})
    assert c.delete(f"{base}/roles/admin", headers=other.headers).status_code == 204
    assert _roles(site, store, admin.account_id) == set()
    # a sub-store's administrators include the parent's: removing its only direct admin is fine
    sub = f.substore(store)
    sub_admin = f.person({sub: "admin"})
    sub_role = f"/api/v1/stores/{sub}/members/{sub_admin.account_id}/roles/admin"
    r = c.delete(sub_role, headers=other.headers)
    assert r.status_code == 204, r.text


@pytest.mark.usefixtures("unchanged")
def test_bad_credentials_get_401(site: Site) -> None:
    c = site.client
    other_secret_token = (
        "MDAxY2xvY2F0aW9uIGh0dHA6Ly90ZXN0c2VydmVyCjAwMzBpZGVudGlmaWVyIDAwMDAwMDAwMDAwMDAwMDAwMDA"
        "wMDAwMDAwMDAwMDAwMAowMDJmc2lnbmF0dXJlIHaJnVtvZYZmSahoEwBBz0EMBkCUprbPZ1KGGJ9cKwTdCg"
    )
    headers: list[dict[str, str] | list[tuple[bytes, bytes]]] = [
        {"authorization": "Bearer"},
        {"authorization": "Bearer "},
        {"authorization": "Basic dXNlcjpwYXNz"},
        {"authorization": "Macaroon root="},
        bearer("x" * 9000),
        bearer("not-a-macaroon"),
        bearer(other_secret_token),
        bearer(site.admin.token[:-4] + "AAAA"),  # signature changed
        [(b"authorization", "Bearer é€".encode())],  # not ASCII
        [(b"authorization", b"Bearer \xff\xfe")],
    ]
    for header in headers:
        r = c.get("/api/v1/account", headers=header)
        error = error_of(r, 401)
        assert error["code"] == "unauthorized"
        assert r.headers.get("www-authenticate") == "Macaroon"
    wrong = [
        {"email": site.admin.email, "password": "wrong password"},
        {"email": "nobody@example.com", "password": "whatever it is"},
        {"email": "not an email", "password": "whatever it is"},
    ]
    for body in wrong:
        error_of(c.post("/api/v1/tokens/password", json=body), 401)


@pytest.mark.usefixtures("unchanged")
def test_audit_bounds_outside_the_calendar_in_utc_are_refused(site: Site) -> None:
    # year 1 at +01:00 is the year 0 in UTC: found by schemathesis as a database error
    for name, value in (
        ("since", "0001-01-01T00:00:04+01:00"),
        ("until", "9999-12-31T23:59:59-01:00"),
    ):
        response = site.client.get(
            f"/api/v1/stores/{site.store}/audit", params={name: value}, headers=site.h
        )
        assert error_of(response, 400)["field"] == name
