"""The dashboard over HTTP, without a browser: fast checks of every page and its manners.

Pages render for the roles that may see them and hide what a role may not do;
changes need the session's CSRF header; a refused form comes back with the
error next to its field and writes nothing; browsers get pages and a redirect
to sign in, while scripts keep the admin API's JSON errors. The snaps pages
run the whole publishing flow through the dashboard's own routes. Every test
runs on SQLite and PostgreSQL (the in-process app of ``module_world``).
"""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest

from iotstore.accounts.services import AccountService
from iotstore.snaps.services import Publishing
from iotstore.snaps.testing import build_snap
from iotstore.stores.audit import Actor
from iotstore.web.auth import CSRF_HEADER

from .._support import PASSWORD, Person, World, asgi_client, error_of, row_counts, unique

HTML = {"accept": "text/html,application/xhtml+xml"}


class Browser:
    """An in-process client signed in with a session cookie, sending what htmx sends."""

    def __init__(self, world: World, email: str) -> None:
        self.client = asgi_client(world.app)
        response = self.client.post("/auth/login", json={"email": email, "password": PASSWORD})
        assert response.status_code == 200, response.text
        self.csrf = str(response.json()["csrf-token"])

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.get(path, headers=HTML, **kwargs)

    def post(
        self, path: str, data: dict[str, Any] | None = None, csrf: bool = True
    ) -> httpx.Response:
        headers = {"hx-request": "true", "hx-current-url": f"http://testserver{path}"}
        if csrf:
            headers[CSRF_HEADER] = self.csrf
        return self.client.post(path, data=data or {}, headers=headers)

    def close(self) -> None:
        self.client.close()


@pytest.fixture
def store(module_world: World) -> tuple[str, str]:
    """A brand root store and a product sub-store: (root, sub)."""
    _, root = module_world.factory.brand()
    return root, module_world.factory.substore(root)


@functools.cache
def _password_hash() -> str:
    # argon2 is slow on purpose: hash the test password once, not once per person
    return AccountService.hash_password(PASSWORD)


def _person(world: World, roles: dict[str, str] | None = None, **kwargs: Any) -> Person:
    """A factory person who can sign in with :data:`PASSWORD`."""
    person = world.factory.person(roles or {}, **kwargs)
    with world.deployment.database.unit_of_work() as session:
        AccountService(session).get(person.account_id).password_hash = _password_hash()
    return person


def _browser(world: World, roles: dict[str, str]) -> Iterator[Browser]:
    person = _person(world, roles)
    browser = Browser(world, person.email)
    yield browser
    browser.close()


@pytest.fixture
def admin(module_world: World, store: tuple[str, str]) -> Iterator[Browser]:
    yield from _browser(module_world, {store[0]: "admin"})


@pytest.fixture
def viewer(module_world: World, store: tuple[str, str]) -> Iterator[Browser]:
    yield from _browser(module_world, {store[1]: "viewer"})


class _Controls(HTMLParser):
    """Form controls of a page, the ids labels point at, and the landmarks."""

    def __init__(self) -> None:
        super().__init__()
        self.controls: list[dict[str, str | None]] = []
        self.labelled: set[str] = set()
        self.landmarks: set[str] = set()
        self.ids: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.append(str(a["id"]))
        if tag in ("input", "select", "textarea") and a.get("type") not in ("hidden", "submit"):
            self.controls.append(a)
        elif tag == "label" and a.get("for"):
            self.labelled.add(str(a["for"]))
        if tag in ("main", "header", "nav", "footer"):
            self.landmarks.add(tag)


def _unlabelled(html: str) -> list[dict[str, str | None]]:
    parser = _Controls()
    parser.feed(html)
    assert {"main", "header"} <= parser.landmarks
    duplicates = {i for i in parser.ids if parser.ids.count(i) > 1}
    assert not duplicates, f"ids used twice (labels and errors would point at both): {duplicates}"
    return [
        c for c in parser.controls if c.get("id") not in parser.labelled and not c.get("aria-label")
    ]


def _tabs(html: str) -> list[str]:
    nav = re.search(r'<nav aria-label="Store" class="tabs">(.*?)</nav>', html, re.S)
    assert nav, html[:2000]
    return re.findall(r">([^<]+)</a>", nav.group(1))


ADMIN_PAGES = [
    "/", "/tokens", "/stores/{root}", "/stores/{sub}", "/stores/{root}/settings",
    "/stores/{root}/members", "/stores/{root}/curation", "/stores/{root}/audit",
    "/stores/{root}/brand", "/stores/{sub}/brand", "/stores/{root}/models",
    "/stores/{root}/devices", "/stores/{root}/signing-log", "/stores/{root}/snaps",
]  # fmt: skip


def test_every_page_renders_for_an_administrator(admin: Browser, store: tuple[str, str]) -> None:
    for template in ADMIN_PAGES:
        path = template.format(root=store[0], sub=store[1])
        response = admin.get(path)
        assert response.status_code == 200, (path, response.text[:500])
        assert response.headers["content-type"].startswith("text/html")
        page = response.text
        assert '<html lang="en">' in page and '<main id="main"' in page, path
        assert re.search(r"<h1[^>]*>", page), path
        # the session's CSRF token rides on every htmx request of the page
        assert f'"X-CSRF-Token": "{admin.csrf}"' in page, path
        # every form control has a label (or an aria-label) a screen reader announces
        assert _unlabelled(page) == [], path
    tabs = _tabs(admin.get(f"/stores/{store[1]}").text)
    assert tabs == [
        "Overview", "Snaps", "Members", "Curation", "Brand keys", "Models", "Devices",
        "Signing log", "Audit log", "Settings",
    ]  # fmt: skip


def test_a_viewer_sees_no_administration(viewer: Browser, store: tuple[str, str]) -> None:
    _, sub = store
    page = viewer.get(f"/stores/{sub}").text
    assert _tabs(page) == ["Overview", "Snaps", "Curation"]
    assert f'href="/stores/{store[0]}"' not in page  # the parent is not theirs to see
    assert "substore-form" not in page
    assert "Devices registered" not in page  # charts follow devices:view
    curation = viewer.get(f"/stores/{sub}/curation").text
    assert "include-form" not in curation and "exclude-form" not in curation
    snaps = viewer.get(f"/stores/{sub}/snaps").text
    assert "register-snap-form" not in snaps and "Review queue" not in snaps
    for path in ("members", "settings", "audit", "models", "devices", "review"):
        response = viewer.get(f"/stores/{sub}/{path}")
        assert response.status_code == 403, path
        assert "<h1>Not allowed</h1>" in response.text


def test_changes_need_the_csrf_header(
    module_world: World, admin: Browser, store: tuple[str, str]
) -> None:
    root, _ = store
    before = row_counts(module_world.deployment)
    new_id = unique("kiosk")
    refused = admin.post(
        f"/stores/{root}/substores", {"id": new_id, "name": "K", "kind": "product"}, csrf=False
    )
    assert refused.status_code == 403
    assert "CSRF" in refused.text and refused.headers["hx-retarget"] == "#flash"
    assert row_counts(module_world.deployment) == before
    done = admin.post(f"/stores/{root}/substores", {"id": new_id, "name": "K", "kind": "product"})
    assert done.status_code == 200, done.text
    assert done.headers["hx-redirect"] == f"/stores/{new_id}"
    assert admin.get(f"/stores/{new_id}").status_code == 200


def test_a_refused_form_shows_the_error_at_its_field_and_writes_nothing(
    module_world: World, admin: Browser, store: tuple[str, str]
) -> None:
    root, sub = store
    before = row_counts(module_world.deployment)
    taken = admin.post(f"/stores/{root}/substores", {"id": sub, "name": "Dup", "kind": "product"})
    assert taken.status_code == 422
    assert re.search(r'id="e-id" class="error-text">[^<]*exists already', taken.text), taken.text
    assert 'value="Dup"' in taken.text  # what was typed stays in the form
    bad_kind = admin.post(
        f"/stores/{root}/substores", {"id": unique("x"), "name": "X", "kind": "b"}
    )
    assert bad_kind.status_code == 422 and 'id="e-kind"' in bad_kind.text
    missing = admin.post(f"/stores/{root}/invitations", {"role": "publisher"})
    assert missing.status_code == 422 and 'id="e-email"' in missing.text
    wrong_name = admin.post(f"/stores/{root}/brand/keys/nope/revoke", {"confirm": "nope"})
    assert wrong_name.status_code == 422
    assert row_counts(module_world.deployment) == before


def test_browsers_get_pages_and_scripts_keep_json(module_world: World) -> None:
    client = module_world.client
    page = client.get("/tokens", headers=HTML)
    assert page.status_code == 303
    assert page.headers["location"] == "/sign-in?next=%2Ftokens"
    htmx = client.post(
        "/tokens", headers={"hx-request": "true", "hx-current-url": "http://t/tokens"}
    )
    assert htmx.headers["hx-redirect"] == "/sign-in?next=%2Ftokens"
    error_of(client.get("/tokens"), 401)  # a script: the admin API's JSON error
    error_of(client.get("/api/v1/stores/nope", headers=HTML), 401)  # the API stays JSON
    failed = client.post(
        "/auth/login", data={"email": "nobody@example.com", "password": "x"}, headers=HTML
    )
    assert failed.status_code == 303 and failed.headers["location"] == "/sign-in?failed=1"
    signin = client.get("/sign-in?failed=1&next=//evil.example/", headers=HTML).text
    assert "Wrong email or password." in signin
    assert 'name="next" value="/"' in signin  # no open redirect through the form


def test_audit_filters_and_its_csv_export(admin: Browser, store: tuple[str, str]) -> None:
    root, sub = store
    today = datetime.now(UTC).date()
    page = admin.get(f"/stores/{root}/audit", params={"action": "store.create", "since": today})
    assert page.status_code == 200
    assert page.text.count("<code>store.create</code>") == 2  # the root and its sub-store
    old = admin.get(f"/stores/{root}/audit", params={"until": today - timedelta(days=1)}).text
    assert "No entries." in old
    empty = admin.get(f"/stores/{root}/audit", params={"action": "", "since": "", "until": "x"})
    assert empty.status_code == 200 and empty.text.count("<code>store.create</code>") == 2
    export = re.search(r'href="(/api/v1/stores/[^"]+/audit\?[^"]+)" download', page.text)
    assert export, page.text
    csv = admin.client.get(html.unescape(export.group(1)))
    assert csv.status_code == 200, csv.text
    assert csv.text.count("store.create") == 2 and sub in csv.text


def test_unknown_things_are_pages_for_browsers(admin: Browser, store: tuple[str, str]) -> None:
    missing = admin.get("/stores/no-such-store")
    assert missing.status_code == 404 and "<h1>Not found</h1>" in missing.text
    model = admin.get(f"/stores/{store[0]}/models/nope")
    assert model.status_code == 404 and "no model" in model.text


def test_tokens_are_shown_once_and_revoked(module_world: World, admin: Browser) -> None:
    created = admin.post(
        "/tokens",
        {"description": "ci", "permissions": ["snap:upload", "snap:view"], "expires_days": "7"},
    )
    assert created.status_code == 200, created.text
    secret = re.search(r'<textarea id="secret-value"[^>]*>([^<]+)</textarea>', created.text)
    assert secret
    me = module_world.client.get(
        "/api/v1/account", headers={"authorization": f"Bearer {secret.group(1)}"}
    )
    assert me.status_code == 403  # the token carries only what was ticked
    listing = admin.get("/tokens").text
    token_id = re.search(r'hx-post="/tokens/(\w+)/revoke"', listing)
    assert token_id and "snap:upload, snap:view" in listing
    assert admin.post(f"/tokens/{token_id.group(1)}/revoke").headers["hx-redirect"] == "/tokens"
    bad = admin.post("/tokens", {"permissions": ["root:everything"]})
    assert bad.status_code == 422 and "unknown permission" in bad.text


def test_invitation_accepted_from_the_emailed_link(
    module_world: World, admin: Browser, store: tuple[str, str]
) -> None:
    root, _ = store
    email = f"{unique('inv')}@example.com"
    assert (
        admin.post(f"/stores/{root}/invitations", {"email": email, "role": "reviewer"}).status_code
        == 200
    )
    # without SMTP settings the deployment's mailer writes the outbox directory
    outbox = Path(module_world.deployment.settings.data_dir) / "outbox"
    found = [t for t in (p.read_text() for p in outbox.glob("*.eml")) if email in t]
    link = re.search(r"/invitations/accept\?token=([\w-]+)", found[-1]) if found else None
    assert link
    anonymous = asgi_client(module_world.app)
    try:
        page = anonymous.get(f"/invitations/accept?token={link.group(1)}", headers=HTML)
        assert page.status_code == 200 and "Your name" in page.text
        accepted = anonymous.post(
            "/invitations/accept",
            data={"token": link.group(1), "display_name": "Rae", "password": PASSWORD},
            headers={"hx-request": "true"},
        )
        assert accepted.status_code == 200, accepted.text
        assert accepted.headers["hx-redirect"] == f"/sign-in?next=/stores/{root}"
        again = anonymous.post(
            "/invitations/accept",
            data={"token": link.group(1), "display_name": "Rae", "password": PASSWORD},
            headers={"hx-request": "true"},
        )
        assert again.status_code == 422 and "error-text" in again.text
    finally:
        anonymous.close()
    members = admin.get(f"/stores/{root}/members").text
    assert email in members and "reviewer" in members


def test_vault_pages_over_http(module_world: World, admin: Browser, store: tuple[str, str]) -> None:
    root, sub = store
    assert (
        admin.post(f"/stores/{root}/brand/keys", {"name": "models", "bits": "2048"}).status_code
        == 200
    )
    signed = admin.post(
        f"/stores/{root}/models",
        {"key": "models", "model": "gw-1", "store": sub, "gadget": "pc", "kernel": "pc-kernel",
         "architecture": "amd64", "base": "core22"},
    )  # fmt: skip
    assert signed.headers.get("hx-redirect") == f"/stores/{root}/models/gw-1", signed.text
    foreign = admin.post(
        f"/stores/{sub}/models",
        {"key": "models", "model": "gw-2", "store": root, "gadget": "pc", "kernel": "pc-kernel"},
    )
    assert foreign.status_code == 422 and 'id="e-store"' in foreign.text
    assert (
        admin.post(f"/stores/{root}/models/gw-1/serial-keys", {"bits": "2048"}).status_code == 200
    )
    assert admin.post(
        f"/stores/{root}/models/gw-1/allowlist", {"entries": "SN-1\nSN-2,"}
    ).status_code in (200, 422)
    assert (
        admin.post(f"/stores/{root}/models/gw-1/allowlist", {"entries": "SN-3\nSN-4"}).status_code
        == 200
    )
    policy = admin.post(f"/stores/{root}/models/gw-1/policy", {"require_key_allowlist": "1"})
    assert policy.status_code == 200
    page = admin.get(f"/stores/{root}/models/gw-1").text
    assert "SN-3" in page and "SN-4" in page
    assert re.search(r'id="p-require_key_allowlist"[^>]*checked', page)
    assert not re.search(r'id="p-open_enrolment"[^>]*checked', page)
    assert "type: model" in page  # the signed assertion is shown
    assert _unlabelled(page) == []
    key = admin.post(f"/stores/{root}/models/gw-1/api-keys", {"label": "line 1"})
    assert "iotk_" in key.text
    csv = admin.client.get(f"/api/v1/stores/{root}/signing-log?format=csv")
    assert csv.status_code == 200 and csv.text.startswith("id,at,")


# -- snaps ------------------------------------------------------------------------------------


def _push(world: World, tmp_path: Path, account_id: str, snap_id: str, version: str) -> int:
    """Upload and push a revision through the publishing services (as the publisher API does)."""
    d = world.deployment
    with d.database.unit_of_work() as session:
        name = (
            Publishing(session, keystore=d.keystore, root=d.root, blobs=d.blobs)
            .snaps.get(snap_id)
            .name
        )
    blob = d.blobs.put_file(build_snap(tmp_path, name, version))
    with d.database.unit_of_work() as session:
        pub = Publishing(session, keystore=d.keystore, root=d.root, blobs=d.blobs)
        actor = Actor(account_id=account_id, address="test")
        upload = pub.uploads.record(actor, account_id, blob, f"{name}.snap")
        status = pub.revisions.push(actor, pub.snaps.get(snap_id), upload.id)
        assert status.revision is not None, status
        return status.revision


def test_snaps_register_review_release_progressive_close(
    module_world: World, store: tuple[str, str], tmp_path: Path
) -> None:
    sub = store[1]
    f = module_world.factory
    f.settings(sub, manual_review=True)
    publisher = _person(module_world, {sub: "publisher"})
    reviewer = _person(module_world, {sub: "reviewer"})
    pub, rev = Browser(module_world, publisher.email), Browser(module_world, reviewer.email)
    try:
        name = unique("hello")
        registered = pub.post(f"/stores/{sub}/snaps", {"name": name, "type": "app"})
        assert registered.headers.get("hx-redirect") == f"/stores/{sub}/snaps/{name}", (
            registered.text
        )
        snap_page = pub.get(f"/stores/{sub}/snaps/{name}").text
        snap_id = re.search(r"<dt>Snap id</dt><dd><code>(\w+)</code>", snap_page)
        assert snap_id
        first = _push(module_world, tmp_path, publisher.account_id, snap_id.group(1), "1.0")
        catalogue = pub.get(f"/stores/{sub}/curation").text
        assert re.search(rf"<strong>{name}</strong></td><td>app</td><td>this store</td>", catalogue)

        queue = rev.get(f"/stores/{sub}/review").text
        assert name in queue and f"/revisions/{first}/accept" in queue
        assert pub.get(f"/stores/{sub}/review").status_code == 403  # publishers do not review
        not_yet = pub.post(
            f"/stores/{sub}/snaps/{name}/releases", {"revision": first, "channels": "stable"}
        )
        assert not_yet.status_code == 422 and "pending" in not_yet.text
        # one revision's own page: its facts, and review controls for reviewers only
        waiting = rev.get(f"/stores/{sub}/snaps/{name}/revisions/{first}")
        assert waiting.status_code == 200, waiting.text
        assert f"/revisions/{first}/accept" in waiting.text and "pending-review" in waiting.text
        assert re.search(r"<dt>SHA3-384</dt><dd><code>[0-9a-f]{96}</code>", waiting.text)
        assert _unlabelled(waiting.text) == []
        assert (
            f"/revisions/{first}/accept"
            not in pub.get(f"/stores/{sub}/snaps/{name}/revisions/{first}").text
        )
        assert (
            f'href="/stores/{sub}/snaps/{name}/revisions/{first}"'
            in pub.get(f"/stores/{sub}/snaps/{name}").text
        )
        assert pub.get(f"/stores/{sub}/snaps/{name}/revisions/999").status_code == 404
        accepted = rev.post(f"/stores/{sub}/snaps/{name}/revisions/{first}/accept")
        assert accepted.status_code == 200, accepted.text

        released = pub.post(
            f"/stores/{sub}/snaps/{name}/releases", {"revision": first, "channels": "latest/stable"}
        )
        assert released.status_code == 200, released.text
        second = _push(module_world, tmp_path, publisher.account_id, snap_id.group(1), "2.0")
        rejected = rev.post(f"/stores/{sub}/snaps/{name}/revisions/{second}/reject", {"reason": ""})
        assert rejected.status_code == 422 and "reason" in rejected.text
        rev.post(f"/stores/{sub}/snaps/{name}/revisions/{second}/accept")
        pub.post(
            f"/stores/{sub}/snaps/{name}/releases",
            {"revision": second, "channels": "stable", "percentage": "25"},
        )
        page = pub.get(f"/stores/{sub}/snaps/{name}").text
        assert re.search(r"<title[^>]*>latest/stable rollout: 25%</title>", page), page
        assert "Revisions released per channel" in page
        held = pub.get(f"/stores/{sub}/snaps/{name}/revisions/{second}").text
        assert "<strong>latest/stable</strong>" in held and "progressive to 25%" in held
        assert _unlabelled(page) == []
        raised = pub.post(
            f"/stores/{sub}/snaps/{name}/progressive",
            {"channel": "latest/stable", "action": "update", "percentage": "60"},
        )
        assert raised.status_code == 200, raised.text
        assert "rollout: 60%" in pub.get(f"/stores/{sub}/snaps/{name}").text
        pub.post(
            f"/stores/{sub}/snaps/{name}/progressive",
            {"channel": "latest/stable", "action": "complete"},
        )
        assert "rollout:" not in pub.get(f"/stores/{sub}/snaps/{name}").text

        typo = pub.post(
            f"/stores/{sub}/snaps/{name}/close", {"channel": "latest/stable", "confirm": "stable"}
        )
        assert typo.status_code == 422 and "type latest/stable" in typo.text
        closed = pub.post(
            f"/stores/{sub}/snaps/{name}/close",
            {"channel": "latest/stable", "confirm": "latest/stable"},
        )
        assert closed.status_code == 200, closed.text
        assert "Not released to any channel yet." in pub.get(f"/stores/{sub}/snaps/{name}").text
    finally:
        pub.close()
        rev.close()


def test_operators_create_brands_and_accounts(module_world: World) -> None:
    operator = _person(module_world, operator=True)
    browser = Browser(module_world, operator.email)
    try:
        page = browser.get("/operator")
        assert page.status_code == 200 and 'href="/operator"' in page.text
        store_id = unique("brand-store")
        made = browser.post(
            "/operator/brands",
            {"username": unique("acme"), "display_name": "Acme", "store_id": store_id},
        )
        assert made.headers.get("hx-redirect") == f"/stores/{store_id}", made.text
        assert browser.get(f"/stores/{store_id}/members").status_code == 200  # its admin
        email = f"{unique('new')}@example.com"
        account = browser.post("/operator/accounts", {"email": email, "display_name": "New"})
        assert account.status_code == 200, account.text
        granted = browser.post(f"/stores/{store_id}/members", {"email": email, "role": "viewer"})
        assert granted.status_code == 200, granted.text
        assert email in browser.get(f"/stores/{store_id}/members").text
        unknown = browser.post(
            f"/stores/{store_id}/members", {"email": "nobody@example.com", "role": "viewer"}
        )
        assert unknown.status_code == 422 and "invite it" in unknown.text
    finally:
        browser.close()
    admin = Browser(module_world, _person(module_world).email)
    try:
        assert admin.get("/operator").status_code == 403
        assert 'href="/operator"' not in admin.get("/").text
    finally:
        admin.close()


def _role_row(members_page: str, email: str) -> str:
    """The members table's row of one person."""
    cell = rf"<td><strong>[^<]*</strong><br><span class=\"muted\">{re.escape(email)}</span>"
    row = re.search(rf"<tr>\s*{cell}.*?</tr>", members_page, re.S)
    assert row, email
    return row.group(0)


def test_a_role_changes_in_one_step_and_never_leaves_a_store_without_administrator(
    module_world: World, admin: Browser, store: tuple[str, str]
) -> None:
    _, sub = store
    person = _person(module_world, {sub: "viewer"})
    page = admin.get(f"/stores/{sub}/members").text
    # the form offers a change in place of each role held, as the API's role-change does
    assert f'id="from-{person.account_id}"' in page and ">in place of viewer<" in page
    assert _unlabelled(page) == []
    path = f"/stores/{sub}/members/{person.account_id}/role"
    changed = admin.post(path, {"role": "publisher", "from_role": "viewer"})
    assert changed.status_code == 200, changed.text
    row = _role_row(admin.get(f"/stores/{sub}/members").text, person.email)
    assert ">publisher " in row and ">viewer " not in row
    added = admin.post(path, {"role": "reviewer", "from_role": ""})  # "in addition": a grant
    assert added.status_code == 200, added.text
    row = _role_row(admin.get(f"/stores/{sub}/members").text, person.email)
    assert ">publisher " in row and ">reviewer " in row
    # the sole administrator of a brand cannot change away their role: refused at the form,
    # nothing written (the grant of the new role is rolled back with the refused removal)
    _, brand_root = module_world.factory.brand()
    lone = _person(module_world, {brand_root: "admin"})
    own = Browser(module_world, lone.email)
    try:
        before = row_counts(module_world.deployment)
        refused = own.post(
            f"/stores/{brand_root}/members/{lone.account_id}/role",
            {"role": "viewer", "from_role": "admin"},
        )
        assert refused.status_code in (409, 422), refused.text
        assert 'class="error-text" role="alert"' in refused.text
        assert ">in place of admin<" in refused.text  # drawn again with the roles held
        assert row_counts(module_world.deployment) == before
    finally:
        own.close()
    bad = admin.post(path, {"role": "emperor", "from_role": "publisher"})
    assert bad.status_code == 422 and "error-text" in bad.text


def test_invitations_are_listed_with_their_states(
    module_world: World, admin: Browser, store: tuple[str, str]
) -> None:
    root, _ = store
    emails = {s: f"{unique(s)}@example.com" for s in ("pending", "revoked", "accepted")}
    for email in emails.values():
        sent = admin.post(f"/stores/{root}/invitations", {"email": email, "role": "viewer"})
        assert sent.status_code == 200, sent.text
    page = admin.get(f"/stores/{root}/members").text
    withdraw = re.search(
        rf"{re.escape(emails['revoked'])}.*?hx-post=\"(/stores/{root}/invitations/[^/]+/revoke)\"",
        page,
        re.S,
    )
    assert withdraw
    assert admin.post(withdraw.group(1)).status_code == 200
    outbox = Path(module_world.deployment.settings.data_dir) / "outbox"
    mail = [t for t in (p.read_text() for p in outbox.glob("*.eml")) if emails["accepted"] in t]
    token = re.search(r"/invitations/accept\?token=([\w-]+)", mail[-1])
    assert token
    anonymous = asgi_client(module_world.app)
    try:
        accepted = anonymous.post(
            "/invitations/accept",
            data={"token": token.group(1), "display_name": "Ada", "password": PASSWORD},
            headers={"hx-request": "true"},
        )
        assert accepted.status_code == 200, accepted.text
    finally:
        anonymous.close()
    pending_only = admin.get(f"/stores/{root}/members").text
    assert emails["pending"] in pending_only
    assert emails["revoked"] not in pending_only
    assert 'href="?history=1"' in pending_only
    history = admin.get(f"/stores/{root}/members?history=1").text

    def state_of(email: str) -> str:
        pattern = rf"<td>{re.escape(email)}</td>.*?class=\"state state-(\w+)\""
        found = re.search(pattern, history, re.S)
        assert found, email
        return found.group(1)

    assert {s: state_of(e) for s, e in emails.items()} == {
        "pending": "pending", "revoked": "revoked", "accepted": "accepted",
    }  # fmt: skip
    # only a pending invitation can be withdrawn
    assert history.count(">Withdraw</button>") == pending_only.count(">Withdraw</button>")
