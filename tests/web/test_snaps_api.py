"""The snaps admin API over HTTP, on SQLite and PostgreSQL: register, upload (through the
storage endpoint) and push, review, release, progressive releases, channel map, history,
and the per-snap collaborator role (which works without any role in the store).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from iotstore.snaps.testing import build_snap
from iotstore.stores.permissions import Permission
from iotstore.web import _publishing
from iotstore.web.admin_api import snaps as admin_snaps
from iotstore.web.publisher_api import snaps as publisher_snaps

from ._support import Person, World, bearer, error_of, unique


@dataclass
class Shop:
    """A brand store with its people, reached over HTTP."""

    world: World
    store: str
    publisher: Person
    reviewer: Person
    outsider: Person
    files: Path

    def url(self, path: str = "") -> str:
        return f"/api/v1/stores/{self.store}/snaps{path}"

    def call(self, who: Person, method: str, path: str, body: Any = None) -> Any:
        r = self.world.client.request(method, self.url(path), headers=who.headers, json=body)
        assert r.status_code < 300, r.text
        return r.json() if r.content else None

    def upload(self, name: str, version: str = "1.0") -> str:
        path = build_snap(self.files, name, version)
        with path.open("rb") as f:
            r = self.world.client.post(
                "/unscanned-upload/",
                files={"binary": (path.name, f, "application/octet-stream")},
            )
        assert r.status_code == 200, r.text
        upload_id: str = r.json()["upload_id"]
        return upload_id

    def push(self, who: Person, name: str, version: str = "1.0", **body: Any) -> Any:
        upload_id = self.upload(name, version)
        return self.call(who, "POST", f"/{name}/revisions", {"upload-id": upload_id, **body})


@pytest.fixture
def shop(module_world: World, tmp_path: Path) -> Shop:
    f = module_world.factory
    _, store = f.brand()
    return Shop(
        module_world,
        store,
        f.person({store: "publisher"}),
        f.person({store: "reviewer"}),
        f.person(),
        tmp_path,
    )


def test_register_push_release_and_read_the_channel_map(shop: Shop) -> None:
    name = unique("hello")
    created = shop.call(shop.publisher, "POST", "", {"name": name})
    assert len(created["snap-id"]) == 32 and created["publisher-id"] == shop.publisher.account_id
    assert [s["name"] for s in shop.call(shop.publisher, "GET", "")["items"]] == [name]
    status = shop.push(shop.publisher, name)
    assert (status["code"], status["processed"], status["revision"]) == (
        "ready_to_release",
        True,
        1,
    )
    shop.push(shop.publisher, name, "2.0")
    shop.call(shop.publisher, "POST", f"/{name}/releases", {"revision": 1, "channels": ["stable"]})
    result = shop.call(
        shop.publisher,
        "POST",
        f"/{name}/releases",
        {"revision": 2, "channels": ["stable"], "progressive-percentage": 25},
    )
    (entry,) = result["channel-map"]
    assert (entry["channel"], entry["revision"], entry["progressive"]["percentage"]) == (
        "latest/stable",
        2,
        25,
    )
    shop.call(
        shop.publisher,
        "POST",
        f"/{name}/progressive",
        {"channel": "stable", "action": "complete"},
    )
    revs = shop.call(shop.publisher, "GET", f"/{name}/revisions")["items"]
    assert [r["revision"] for r in revs] == [2, 1]
    assert len(revs[0]["sha3-384"]) == 96
    history = shop.call(shop.publisher, "GET", f"/{name}/releases")["items"]
    assert [(h["action"], h["revision"]) for h in history] == [
        ("complete", 2),
        ("release", 2),
        ("release", 1),
    ]
    older = shop.call(shop.publisher, "GET", f"/{name}/releases?limit=2")
    rest = shop.call(shop.publisher, "GET", f"/{name}/releases?limit=2&after={older['next']}")
    assert [h["action"] for h in older["items"] + rest["items"]] == [
        "complete",
        "release",
        "release",
    ]
    assert rest["next"] is None
    closed = shop.call(shop.publisher, "POST", f"/{name}/close", {"channels": ["stable"]})
    assert closed["closed-channels"] == ["latest/stable"] and closed["channel-map"] == []


def test_review_queue_accept_and_reject(shop: Shop) -> None:
    shop.world.factory.settings(shop.store, manual_review=True)
    name = unique("rev")
    shop.call(shop.publisher, "POST", "", {"name": name})
    assert shop.push(shop.publisher, name)["code"] == "need_manual_review"
    assert shop.push(shop.publisher, name, "2.0")["code"] == "need_manual_review"
    r = shop.world.client.post(
        shop.url(f"/{name}/releases"),
        headers=shop.publisher.headers,
        json={"revision": 1, "channels": ["stable"]},
    )
    assert error_of(r, 409)["code"] == "refused"
    queue = shop.world.client.get(
        f"/api/v1/stores/{shop.store}/review-queue", headers=shop.reviewer.headers
    ).json()["items"]
    assert [(q["name"], q["revision"]) for q in queue] == [(name, 1), (name, 2)]
    # a page at a time: the cursor of a full page leads to the rest
    first = shop.world.client.get(
        f"/api/v1/stores/{shop.store}/review-queue?limit=1", headers=shop.reviewer.headers
    ).json()
    rest = shop.world.client.get(
        f"/api/v1/stores/{shop.store}/review-queue?limit=1&after={first['next']}",
        headers=shop.reviewer.headers,
    ).json()
    assert [q["revision"] for q in first["items"] + rest["items"]] == [1, 2]
    shop.call(shop.reviewer, "POST", f"/{name}/revisions/1/accept")
    rejected = shop.call(
        shop.reviewer, "POST", f"/{name}/revisions/2/reject", {"reason": "asks for too much"}
    )
    assert (rejected["status"], rejected["review-reason"]) == ("rejected", "asks for too much")
    shop.call(shop.publisher, "POST", f"/{name}/releases", {"revision": 1, "channels": ["edge"]})
    r = shop.world.client.post(
        shop.url(f"/{name}/releases"),
        headers=shop.publisher.headers,
        json={"revision": 2, "channels": ["edge"]},
    )
    assert "asks for too much" in error_of(r, 409)["message"]
    # the reviewer's role does not let it publish
    r = shop.world.client.post(
        shop.url(f"/{name}/releases"),
        headers=shop.reviewer.headers,
        json={"revision": 1, "channels": ["stable"]},
    )
    error_of(r, 403)


def test_collaborator_without_a_store_role_manages_that_snap_only(shop: Shop) -> None:
    mine, other = unique("col"), unique("oth")
    for name in (mine, other):
        shop.call(shop.publisher, "POST", "", {"name": name})
    shop.call(
        shop.publisher,
        "POST",
        f"/{mine}/collaborators",
        {"account-id": shop.outsider.account_id},
    )
    listed = shop.call(shop.publisher, "GET", f"/{mine}/collaborators")["items"]
    assert [c["account-id"] for c in listed] == [shop.outsider.account_id]
    seen = shop.call(shop.outsider, "GET", f"/{mine}")
    assert Permission.SNAP_RELEASE.value in seen["your-permissions"]
    assert shop.push(shop.outsider, mine)["revision"] == 1
    shop.call(shop.outsider, "POST", f"/{mine}/releases", {"revision": 1, "channels": ["beta"]})
    # the other snap, and the store itself, stay hidden from it
    for path in (f"/{other}", f"/{other}/channel-map", ""):
        r = shop.world.client.get(shop.url(path), headers=shop.outsider.headers)
        error_of(r, 404)
    r = shop.world.client.post(
        shop.url(f"/{mine}/collaborators"),
        headers=shop.outsider.headers,
        json={"account-id": shop.reviewer.account_id},
    )
    assert error_of(r, (403, 404))["code"] in {"forbidden", "not-found"}
    # a token of the collaborator that lacks the permission gets nothing more
    _, view_only = shop.world.factory.token(shop.outsider, permissions=["snap:view"])
    r = shop.world.client.post(
        shop.url(f"/{mine}/releases"),
        headers=bearer(view_only),
        json={"revision": 1, "channels": ["edge"]},
    )
    error_of(r, 403)
    shop.call(shop.publisher, "DELETE", f"/{mine}/collaborators/{shop.outsider.account_id}")
    r = shop.world.client.get(shop.url(f"/{mine}"), headers=shop.outsider.headers)
    error_of(r, 404)


def test_bad_input_is_refused_with_a_reason(shop: Shop) -> None:
    r = shop.world.client.post(shop.url(), headers=shop.publisher.headers, json={"name": "Bad--"})
    assert error_of(r, 400)["code"] == "invalid-input"
    name = unique("bad")
    shop.call(shop.publisher, "POST", "", {"name": name})
    r = shop.world.client.post(shop.url(), headers=shop.publisher.headers, json={"name": name})
    assert error_of(r, 409)["code"] == "conflict"
    r = shop.world.client.post(
        shop.url(f"/{name}/revisions"),
        headers=shop.publisher.headers,
        json={"upload-id": "iu1.forged.value"},
    )
    assert r.status_code in (400, 404), r.text
    shop.push(shop.publisher, name)
    for body in (
        {"revision": 1, "channels": ["latest/unstable"]},
        {"revision": 1, "channels": ["9.9/stable"]},
        {"revision": 1, "channels": ["stable"], "progressive-percentage": 100},
    ):
        r = shop.world.client.post(
            shop.url(f"/{name}/releases"), headers=shop.publisher.headers, json=body
        )
        assert r.status_code in (400, 422), (body, r.text)
    r = shop.world.client.post(
        shop.url(f"/{name}/releases"),
        headers=shop.publisher.headers,
        json={"revision": 7, "channels": ["stable"]},
    )
    error_of(r, 404)


def test_one_publishing_factory_serves_every_edge() -> None:
    # the admin API, the publisher API and the dashboard build the services one way
    assert admin_snaps.publishing is publisher_snaps.publishing is _publishing.publishing
