"""The admin API's main flows through real HTTP: granian serving the app on loopback.

An operator creates a brand with its store; its administrator builds a tree of
sub-stores four deep, changes settings, grants and changes roles, generates
and registers brand keys, disables and revokes them with confirmation (and
is refused while a model relies on a key, unless forced); the audit log
shows every step, as JSON and CSV, filtered and paginated. Tokens are issued
with restrictions, listed, revoked, expire, and can be narrowed by their
holder with a caveat. Both backends.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import socket
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from pymacaroons import Macaroon

from iotstore import asserts
from iotstore.assertdb import trust_database
from iotstore.asserts.testing import fixed_key, mint_chain

from ._support import PASSWORD, Person, World, bearer, error_of, unique


def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, (
        f"{response.request.method} {response.request.url.path}: "
        f"{response.status_code} {response.text[:500]}"
    )
    return response.json() if response.content else None


def _all_audit(client: httpx.Client, store: str, who: Person, **params: Any) -> list[Any]:
    """Every audit entry of the store's subtree, following the pagination cursor."""
    items: list[Any] = []
    cursor: str | None = "0"
    while cursor is not None:
        page = _ok(
            client.get(
                f"/api/v1/stores/{store}/audit",
                params={**params, "after": cursor, "limit": 3},
                headers=who.headers,
            )
        )
        items += page["items"]
        cursor = page["next"]
    return items


def test_brand_tree_settings_roles_and_the_audit_log(live_world: World) -> None:
    c, f = live_world.client, live_world.factory
    operator = f.person(operator=True)
    admin = f.person(password=PASSWORD)

    # an operator creates the brand, its store and names its administrator
    root = unique("root")
    brand = _ok(
        c.post(
            "/api/v1/brands",
            json={
                "username": unique("brand"),
                "display-name": "Acme Devices",
                "store-id": root,
                "store-name": "Acme",
                "admin-email": admin.email,
            },
            headers=operator.headers,
        ),
        201,
    )
    assert brand["store"]["id"] == root and brand["store"]["kind"] == "brand"
    assert len(brand["account-id"]) == 32
    error_of(c.post("/api/v1/brands", json={}, headers=admin.headers), 403)  # not an operator
    assert [s["id"] for s in _ok(c.get("/api/v1/stores", headers=admin.headers))["items"]] == [root]

    # sub-stores four deep, product and ecosystem in turn
    chain = [root]
    for depth, kind in enumerate(("product", "ecosystem", "product", "ecosystem"), start=1):
        store_id = f"{root}-d{depth}"
        made = _ok(
            c.post(
                f"/api/v1/stores/{chain[-1]}/substores",
                json={"id": store_id, "name": f"Level {depth}", "kind": kind},
                headers=admin.headers,
            ),
            201,
        )
        assert (made["parent-id"], made["kind"], made["brand-id"]) == (
            chain[-1], kind, brand["account-id"],
        )  # fmt: skip
        chain.append(store_id)
    tree = _ok(c.get(f"/api/v1/stores/{root}/tree", headers=admin.headers))["items"]
    assert {s["id"]: s["parent-id"] for s in tree} == dict(zip(chain[1:], chain[:-1], strict=True))
    for parent, child in itertools.pairwise(chain):
        assert _ok(c.get(f"/api/v1/stores/{parent}", headers=admin.headers))["substores"] == [child]

    # settings
    settings = {
        "name": "Partner Ecosystem",
        "private": False,
        "manual-review": True,
        "allow-inclusion": True,
        "offer-parent-catalogue": False,
    }
    _ok(c.patch(f"/api/v1/stores/{chain[2]}", json=settings, headers=admin.headers))
    got = _ok(c.get(f"/api/v1/stores/{chain[2]}", headers=admin.headers))
    assert {k: got[k] for k in settings} == settings

    # roles: grant, use, change, remove
    member = f.person()
    members = f"/api/v1/stores/{chain[1]}/members/{member.account_id}"
    _ok(c.put(f"{members}/roles/viewer", headers=admin.headers))
    _ok(c.get(f"/api/v1/stores/{chain[1]}", headers=member.headers))
    error_of(c.patch(f"/api/v1/stores/{chain[1]}", json={"name": "x"}, headers=member.headers), 403)
    listed = _ok(c.get("/api/v1/stores", headers=member.headers))["items"]
    assert [s["id"] for s in listed] == [chain[1]]
    change = {"from": "viewer", "to": "admin"}
    changed = _ok(c.post(f"{members}/role-change", json=change, headers=admin.headers))
    assert changed["role"] == "admin"
    _ok(c.patch(f"/api/v1/stores/{chain[1]}", json={"name": "Products"}, headers=member.headers))
    listed = _ok(c.get("/api/v1/stores", headers=member.headers))["items"]
    assert [s["id"] for s in listed] == sorted(chain[1:])  # administers everything below
    roles = _ok(c.get(f"/api/v1/stores/{chain[1]}/members", headers=admin.headers))["items"]
    assert [(m["account-id"], m["role"]) for m in roles] == [(member.account_id, "admin")]
    assert c.delete(f"{members}/roles/admin", headers=admin.headers).status_code == 204
    error_of(c.get(f"/api/v1/stores/{chain[1]}", headers=member.headers), 404)

    # the audit log: every step, who, where from, before and after
    entries = _all_audit(c, root, admin)
    actions = [e["action"] for e in entries]
    expected = [
        "store.create", "role.grant", "brand.create",
        "store.create", "store.create", "store.create", "store.create",
        "store.update", "role.grant", "role.grant", "role.remove", "store.update", "role.remove",
    ]  # fmt: skip
    assert actions == expected
    assert [e["id"] for e in entries] == sorted(e["id"] for e in entries)
    by_admin = entries[3:]
    assert {e["actor-account-id"] for e in entries[:3]} == {operator.account_id}
    assert {e["actor-account-id"] for e in by_admin if e["action"] != "store.update"} == {
        admin.account_id
    }
    assert {e["address"] for e in entries} == {"127.0.0.1"}  # the real client address
    update = entries[7]
    assert (update["store-id"], update["before"]["private"], update["after"]["private"]) == (
        chain[2], True, False,
    )  # fmt: skip
    assert update["after"]["name"] == "Partner Ecosystem"
    for e in entries:
        assert datetime.fromisoformat(e["at"]).tzinfo is not None

    # filters: by action, by time, per sub-tree
    creates = _all_audit(c, root, admin, action="store.create")
    assert [e["id"] for e in creates] == [e["id"] for e in entries if e["action"] == "store.create"]
    since = entries[7]["at"]
    later = _all_audit(c, root, admin, since=since)
    assert {e["id"] for e in later} == {e["id"] for e in entries if e["at"] >= since}
    earlier = _all_audit(c, root, admin, until=since)
    assert {e["id"] for e in earlier} == {e["id"] for e in entries if e["at"] < since}
    below = _all_audit(c, chain[2], admin)
    assert {e["store-id"] for e in below} <= set(chain[2:])
    assert [e["id"] for e in below] == [e["id"] for e in entries if e["store-id"] in chain[2:]]

    # CSV export of the same entries
    r = c.get(
        f"/api/v1/stores/{root}/audit",
        params={"format": "csv", "limit": 500},
        headers=admin.headers,
    )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert f'filename="audit-{root}.csv"' in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [int(row["id"]) for row in rows] == [e["id"] for e in entries]
    assert [row["action"] for row in rows] == actions
    assert json.loads(rows[7]["after"]) == entries[7]["after"]
    assert rows[0]["address"] == "127.0.0.1"


def _account_key_request(brand_id: str, name: str, since: datetime) -> bytes:
    """What ``snap export-key --account=BRAND NAME`` prints, signed by the fixed brand key."""
    key = fixed_key("brand")
    request = asserts.sign(
        "account-key-request",
        {
            "account-id": brand_id,
            "name": name,
            "public-key-sha3-384": key.public_key.id,
            "since": asserts.format_time(since),
        },
        key,
        key.public_key.encoded,
    )
    return request.to_bytes()


def _model_signed_by_fixed_brand_key(world: World, brand_id: str, model: str) -> None:
    """Put a model the fixed brand key signed into the assertions table (devices use it)."""
    assertion = mint_chain(brand_id=brand_id, model=model).model
    deployment = world.deployment
    with deployment.database.unit_of_work() as session:
        trust_database(session, deployment.root.trusted).add(assertion)


def _account_key(world: World, key_id: str) -> asserts.AccountKey:
    deployment = world.deployment
    with deployment.database.unit_of_work(write=False) as session:
        found = trust_database(session, deployment.root.trusted).find("account-key", (key_id,))
    assert isinstance(found, asserts.AccountKey)
    return found


def test_brand_keys_generate_register_disable_revoke(live_world: World) -> None:
    c, f = live_world.client, live_world.factory
    brand_id, root = f.brand()
    sub = f.substore(root)
    admin = f.person({root: "admin"})
    keys = f"/api/v1/stores/{root}/brand/keys"

    generated = _ok(
        c.post(keys, json={"name": "signing", "bits": 2048}, headers=admin.headers), 201
    )
    assert (generated["held"], generated["state"], generated["until"]) == (True, "active", None)
    assert _account_key(live_world, generated["key-id"]).account_id == brand_id
    error_of(c.post(keys, json={"name": "signing", "bits": 2048}, headers=admin.headers), 409)
    # keys belong to the brand: managed from its root store only
    error_of(c.get(f"/api/v1/stores/{sub}/brand/keys", headers=admin.headers), 400)

    # a key the brand holds itself, from an account-key-request
    since = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    request = _account_key_request(brand_id, "registered", since)
    plain = {**admin.headers, "content-type": "text/plain"}
    registered = _ok(c.post(f"{keys}/register", content=request, headers=plain), 201)
    assert registered["key-id"] == fixed_key("brand").public_key.id
    assert (registered["held"], registered["since"]) == (False, asserts.format_time(since))
    error_of(c.post(f"{keys}/register", content=request, headers=plain), 409)  # already known
    other_brand, _ = f.brand()
    for bad in (
        _account_key_request(other_brand, "elsewhere", since),  # for another account
        b"not an assertion",
        request.replace(b"registered", b"registerex"),  # signature no longer matches
    ):
        error_of(c.post(f"{keys}/register", content=bad, headers=plain), 400)
    listed = _ok(c.get(keys, headers=admin.headers))["items"]
    assert [k["name"] for k in listed] == ["registered", "signing"]

    # a model signed by the registered key: disabling or revoking it needs force
    _model_signed_by_fixed_brand_key(live_world, brand_id, "widget")
    action = f"{keys}/registered"
    h = admin.headers
    wrong = error_of(c.post(f"{action}/disable", json={"confirm": "signing"}, headers=h), 400)
    assert wrong["field"] == "confirm"
    for verb in ("disable", "revoke"):
        refused = error_of(
            c.post(f"{action}/{verb}", json={"confirm": "registered"}, headers=admin.headers), 409
        )
        assert refused["code"] == "refused" and f"{brand_id}/widget" in refused["message"]
    forced = {"confirm": "registered", "force": True}
    disabled = _ok(c.post(f"{action}/disable", json=forced, headers=h))
    assert disabled["state"] == "disabled"
    revoked = _ok(c.post(f"{action}/revoke", json=forced, headers=h))
    assert revoked["state"] == "revoked" and revoked["until"] is not None
    current = _account_key(live_world, registered["key-id"])
    assert current.revision == 1
    assert current.validity.until is not None and current.validity.until <= datetime.now(UTC)

    # the held key has no models: confirmation alone suffices
    for verb, state in (("disable", "disabled"), ("revoke", "revoked")):
        done = _ok(c.post(f"{keys}/signing/{verb}", json={"confirm": "signing"}, headers=h))
        assert done["state"] == state
    held = live_world.deployment.keystore.find_by_id(generated["key-id"])
    assert held.disabled  # the key store refuses to sign with it

    # every step is in the audit log, the forced ones marked
    entries = _all_audit(c, root, admin, limit=500)
    key_steps = [
        (e["action"], e["after"].get("forced"))
        for e in entries
        if e["action"].startswith("brand-key.")
    ]
    assert key_steps == [
        ("brand-key.generate", None),
        ("brand-key.register", None),
        ("brand-key.disable", True),
        ("brand-key.revoke", True),
        ("brand-key.disable", False),
        ("brand-key.revoke", False),
    ]


def test_tokens_restrict_list_revoke_expire_and_attenuate(live_world: World) -> None:
    c, f = live_world.client, live_world.factory
    _, root = f.brand()
    s1, s2 = f.substore(root), f.substore(root)
    s1a = f.substore(s1)
    person = f.person({root: "admin"}, password=PASSWORD)

    # a restricted token, by password
    made = _ok(
        c.post(
            "/api/v1/tokens/password",
            json={
                "email": person.email,
                "password": PASSWORD,
                "description": "CI for s1",
                "stores": [s1],
                "permissions": ["store:view", "store:manage"],
                "expires-in": 3600,
            },
            headers={},
        ),
        201,
    )
    restricted = bearer(made["token"])
    expires = datetime.fromisoformat(made["expires-at"])
    assert timedelta(minutes=59) < expires - datetime.now(UTC) <= timedelta(hours=1)
    wrong = {"email": person.email, "password": "nope-nope-nope"}
    error_of(c.post("/api/v1/tokens/password", json=wrong), 401)

    listed = {t["id"]: t for t in _ok(c.get("/api/v1/tokens", headers=person.headers))["items"]}
    assert listed[made["id"]]["stores"] == [s1]
    assert listed[made["id"]]["permissions"] == ["store:manage", "store:view"]
    assert "token" not in listed[made["id"]]  # the secret is shown once

    # the restriction holds: its store and those below, its permissions only
    _ok(c.get(f"/api/v1/stores/{s1}", headers=restricted))
    _ok(c.patch(f"/api/v1/stores/{s1a}", json={"name": "below s1"}, headers=restricted))
    error_of(c.patch(f"/api/v1/stores/{s2}", json={"name": "x"}, headers=restricted), 403)
    error_of(c.get(f"/api/v1/stores/{root}", headers=restricted), 403)
    error_of(c.get(f"/api/v1/stores/{s1}/members", headers=restricted), 403)
    # it cannot mint a wider token, only a narrower one
    wider = {"stores": [s1, s2], "permissions": ["store:view"]}
    error_of(c.post("/api/v1/tokens", json=wider, headers=restricted), 403)
    # (minting needs account:self, which this token lacks)
    narrower = {"stores": [s1], "permissions": ["store:view", "account:self"]}
    error_of(c.post("/api/v1/tokens", json=narrower, headers=restricted), 403)
    minted = _ok(c.post("/api/v1/tokens", json=narrower, headers=person.headers), 201)
    minting = bearer(minted["token"])
    narrowest = {"stores": [s1], "permissions": ["store:view"]}
    _ok(c.post("/api/v1/tokens", json=narrowest, headers=minting), 201)
    error_of(c.post("/api/v1/tokens", json={**narrowest, "stores": [s2]}, headers=minting), 403)

    # revoked: refused at once, listed as revoked, revoking again is harmless
    assert c.delete(f"/api/v1/tokens/{made['id']}", headers=person.headers).status_code == 204
    assert (
        error_of(c.get(f"/api/v1/stores/{s1}", headers=restricted), 401)["code"] == "unauthorized"
    )
    assert c.delete(f"/api/v1/tokens/{made['id']}", headers=person.headers).status_code == 204
    listed = {t["id"]: t for t in _ok(c.get("/api/v1/tokens", headers=person.headers))["items"]}
    assert listed[made["id"]]["revoked-at"] is not None

    # expired: works until its expiry, refused after
    expiry = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    _, short = f.token(person, expires_at=expiry)
    _ok(c.get("/api/v1/account", headers=bearer(short)))
    time.sleep(max(0.0, (expiry - datetime.now(UTC)).total_seconds()) + 0.2)
    assert "expired" in error_of(c.get("/api/v1/account", headers=bearer(short)), 401)["message"]

    # attenuation: the holder adds caveats; each one only narrows
    def narrowed(token: str, *caveats: str) -> dict[str, str]:
        macaroon = Macaroon.deserialize(token)
        for caveat in caveats:
            macaroon.add_first_party_caveat(caveat)
        return bearer(macaroon.serialize())

    only_s1 = narrowed(person.token, f"iotstore-stores = {s1}")
    _ok(c.get(f"/api/v1/stores/{s1}", headers=only_s1))
    _ok(c.get(f"/api/v1/stores/{s1a}", headers=only_s1))
    error_of(c.get(f"/api/v1/stores/{root}", headers=only_s1), 403)
    error_of(c.patch(f"/api/v1/stores/{s2}", json={"name": "x"}, headers=only_s1), 403)
    view_only = narrowed(
        person.token, f"iotstore-stores = {s1}", "iotstore-permissions = store:view"
    )
    _ok(c.get(f"/api/v1/stores/{s1}", headers=view_only))
    error_of(c.patch(f"/api/v1/stores/{s1}", json={"name": "x"}, headers=view_only), 403)
    # a second stores caveat cannot widen the first: they intersect
    both = narrowed(person.token, f"iotstore-stores = {s1}", f"iotstore-stores = {s2}")
    error_of(c.get(f"/api/v1/stores/{s1}", headers=both), 403)
    error_of(c.get(f"/api/v1/stores/{s2}", headers=both), 403)
    past = narrowed(person.token, "iotstore-expires = 2020-01-01T00:00:00Z")
    error_of(c.get("/api/v1/account", headers=past), 401)
    unknown = narrowed(person.token, "iotstore-admin = true")
    error_of(c.get("/api/v1/account", headers=unknown), 401)
    # a token re-signed with a guessed key does not verify
    forged = Macaroon(
        location="x", identifier=Macaroon.deserialize(person.token).identifier, key=b"guess"
    )
    error_of(c.get("/api/v1/account", headers=bearer(forged.serialize())), 401)
    # the unrestricted token still works
    _ok(c.patch(f"/api/v1/stores/{s2}", json={"name": "still mine"}, headers=person.headers))


def _raw_request(client: httpx.Client, head: str) -> tuple[int, bytes]:
    """Send ``head`` as is to the live server; return the status and the body."""
    port = client.base_url.port
    assert port is not None
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head.encode())
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    status_line, _, rest = received.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


def test_real_http_error_bodies(live_world: World) -> None:
    c, f = live_world.client, live_world.factory
    _, root = f.brand()
    admin = f.person({root: "admin"})
    url = f"/api/v1/stores/{root}"
    limit = live_world.deployment.settings.max_body_bytes
    # a body sent in chunks, without Content-Length, stopped once over the limit (the
    # chunks add up to one byte over it, so the server has read all of it when it answers)
    chunks = [b"x" * 65536] * (limit // 65536) + [b"x" * (limit % 65536 + 1)]
    h = {**admin.headers, "content-type": "application/json"}
    assert error_of(c.patch(url, content=iter(chunks), headers=h), 413)["code"] == "too-large"
    # a Content-Length over the limit is answered before any of the body is read: sent
    # without one, since a client still sending would race the server closing
    status, body = _raw_request(
        c,
        f"PATCH {url} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        f"Authorization: {admin.headers['Authorization']}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {limit + 1}\r\n\r\n",
    )
    assert status == 413 and json.loads(body)["error"]["code"] == "too-large"
    error_of(c.patch(url, content=b'{"name": ', headers=h), 400)
    error_of(c.get("/api/v1/nothing-here", headers=admin.headers), 404)
    error_of(c.put("/api/v1/account", headers=admin.headers), 405)
    assert _ok(c.get(url, headers=admin.headers))["id"] == root  # still serving


def test_brand_and_account_names_refuse_control_characters(world: World) -> None:
    c, f = world.client, world.factory
    operator = f.person(operator=True)

    def post(path: str, body: dict[str, Any]) -> httpx.Response:
        # json.dumps escapes what UTF-8 cannot carry (a lone surrogate becomes "\ud800")
        headers = {**operator.headers, "Content-Type": "application/json"}
        return c.post(path, content=json.dumps(body), headers=headers)

    def brand(**changes: Any) -> httpx.Response:
        body = {"username": unique("brand"), "display-name": "Acme", "store-id": unique("s")}
        return post("/api/v1/brands", {**body, **changes})

    bad = {
        "NUL": "Acme\x00Devices",
        "newline": "Acme\nDevices",
        "escape": "Acme \x1b[31mred",
        "DEL": "Acme\x7f",
        "C1 control": "Acme\x85",
        "line separator": "Acme\u2028",
        "right-to-left override": "Acme \u202eseciveD",
        "lone surrogate": "Acme \ud800",
    }
    for what, name in bad.items():
        error = error_of(brand(**{"display-name": name}), 400)
        assert error["field"] == "display-name", what
        if what != "lone surrogate":  # pydantic refuses that one first: not a string
            assert "control characters" in error["message"], (what, error)
        error = error_of(brand(**{"store-name": name}), 400)
        assert error["field"] == "store-name", what
        account = {"email": f"{unique('p')}@example.com", "display-name": name}
        error = error_of(post("/api/v1/accounts", account), 400)
        assert error["field"] == "display-name", what
    # letters of any script and emoji are names
    made = _ok(brand(**{"display-name": "Acme Ünïcødé 設備 🚀"}), 201)
    assert made["display-name"] == "Acme Ünïcødé 設備 🚀"


def test_a_failed_key_generation_leaves_no_key_behind(world: World) -> None:
    # A real fault after the key store wrote: the root key is disabled, so the new
    # key's account-key cannot be signed and the request fails after generation.
    c, f, deployment = world.client, world.factory, world.deployment
    _, store_id = f.brand()
    admin = f.person({store_id: "admin"})
    url = f"/api/v1/stores/{store_id}/brand/keys"
    made = c.post(url, json={"name": "kept", "bits": 2048}, headers=admin.headers)
    assert made.status_code == 201, made.text
    before = {k.name for k in deployment.keystore.list()}

    deployment.keystore.disable(deployment.root.key_name)
    error = error_of(c.post(url, json={"name": "lost", "bits": 2048}, headers=admin.headers), 409)
    assert "disabled" in error["message"]
    assert {k.name for k in deployment.keystore.list()} == before  # the new key was deleted
    names = [k["name"] for k in _ok(c.get(url, headers=admin.headers))["items"]]
    assert "lost" not in names and "kept" in names

    # disabling reaches the key store once the transaction commits (not before)
    kept = next(k for k in deployment.keystore.list() if k.name.endswith("-kept"))
    refused = c.post(f"{url}/kept/disable", json={"confirm": "not-the-name"}, headers=admin.headers)
    assert refused.status_code in (400, 409), refused.text
    assert deployment.keystore.get(kept.name).disabled is False
    disabled = c.post(f"{url}/kept/disable", json={"confirm": "kept"}, headers=admin.headers)
    assert disabled.status_code == 200, disabled.text
    assert deployment.keystore.get(kept.name).disabled is True
