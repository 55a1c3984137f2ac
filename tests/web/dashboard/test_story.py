"""Issue 7's whole story, in Chromium, against one served deployment.

An administrator signs in through the OIDC provider, creates a product
sub-store with manual review, a brand key, a model for the sub-store with a
serial key and an API key; invites a publisher, whose email arrives at the
SMTP server and who accepts it, signs in, registers a snap name and makes an
upload token in the browser. The publisher uploads with ``iotstore snap
upload``; a reviewer accepts the revision in the browser; the publisher
releases it to stable in the browser. A device running snapd's own
registration and store code (``conformance/devicereg``, ``conformance/storeclient``)
registers with the model and installs the snap; the administrator sees the
device and the release in the dashboard. Screenshots of each step are saved.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from iotstore import asserts
from iotstore.assertdb import trust_database
from iotstore.snaps.testing import build_snap
from tests.conformance.devicereg import DeviceReg
from tests.conformance.snapd import build_conformance_program

from .._support import PASSWORD, unique
from ._browser import Site, sign_in, through_provider

pytestmark = pytest.mark.snapd

Shoot = Callable[[Page, str], Path]


def _model_seed(site: Site, brand_id: str, model: str, path: Path) -> Path:
    """The model with its chain (brand account-key, brand account), as a seed carries it."""
    with site.deployment.database.unit_of_work(write=False) as session:
        trust = trust_database(session, site.deployment.root.trusted)
        found = trust.find("model", ("16", brand_id, model))
        chain = [
            trust.find("account-key", (found.sign_key_id,)),
            trust.find("account", (brand_id,)),
        ]
    path.write_bytes(asserts.encode_stream([found, *chain]))
    return path


def _cli(site: Site, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``iotstore`` as the publisher runs it."""
    return subprocess.run(
        [sys.executable, "-m", "iotstore", *args],
        env={"IOTSTORE_URL": site.url, "IOTSTORE_TOKEN": token, "PATH": "/usr/bin:/bin",
             "HOME": str(Path.home()), "COLUMNS": "200"},
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def _store_client(
    site: Site, seed: Path, serial: Path, key: Path, *steps: dict[str, Any]
) -> dict[str, Any]:
    """snapd's store client as the registered device (conformance/storeclient)."""
    binary = build_conformance_program("storeclient")
    root = site.deployment.data_dir / "root.assert"
    proc = subprocess.run(
        [str(binary), "-url", site.url + "/", "-trusted", str(root), "-model", str(seed),
         "-serial", str(serial), "-key", str(key)],
        input=json.dumps({"steps": list(steps)}).encode(), capture_output=True, timeout=300,
        check=False,
    )  # fmt: skip
    assert proc.returncode in (0, 1), proc.stderr.decode()
    report: dict[str, Any] = json.loads(proc.stdout)
    return report


def _new_page(page: Page) -> Page:
    """A second person: another browser context (own cookies) on the same Chromium."""
    browser = page.context.browser
    assert isinstance(browser, Browser)
    other = browser.new_context(viewport={"width": 1366, "height": 900})
    new = other.new_page()
    new.on("dialog", lambda dialog: dialog.accept())
    return new


def test_the_whole_story(page: Page, site: Site, shoot: Shoot, tmp_path: Path) -> None:
    page.on("dialog", lambda dialog: dialog.accept())
    brand_id, root = site.factory.brand()
    login = unique("admin")
    site.factory.person({root: "admin"}, email=f"{login}@example.test", display_name="Ada")
    product = unique("kiosk")

    # 1. the administrator signs in through the identity provider
    page.goto(f"{site.url}/")
    page.get_by_role("link", name="Sign in with Test sign-on").click()
    through_provider(page, site, login)
    page.wait_for_url(f"{site.url}/")
    page.get_by_role("link", name=f"Store {root}").click()

    # 2. a product sub-store whose uploads wait for a reviewer
    form = page.locator("#substore-form")
    form.get_by_label("Store id").fill(product)
    form.get_by_label("Name").fill("Kiosk line")
    form.get_by_role("button", name="Create sub-store").click()
    page.wait_for_url(f"{site.url}/stores/{product}")
    page.get_by_role("navigation", name="Store").get_by_role("link", name="Settings").click()
    page.get_by_label("Manual review").check()
    page.get_by_role("button", name="Save settings").click()
    page.wait_for_url(re.compile(r"saved=1"))

    # 3. the serial vault: brand key, a model for the sub-store, its serial key and API key
    page.goto(f"{site.url}/stores/{root}/brand")
    page.locator("#key-form").get_by_label("Key name").fill("models")
    page.locator("#key-form").get_by_label("Size (bits)").select_option("2048")
    page.get_by_role("button", name="Generate").click()
    expect(page.get_by_role("row").filter(has_text="models")).to_contain_text("active")
    page.goto(f"{site.url}/stores/{root}/models")
    model_form = page.locator("#model-form")
    model_form.get_by_label("Model name").fill("kiosk")
    model_form.get_by_label("Store of its devices").select_option(product)
    model_form.get_by_role("button", name="Sign model").click()
    page.wait_for_url(f"{site.url}/stores/{root}/models/kiosk")
    page.locator("#rotate-form").get_by_label("Size (bits)").select_option("2048")
    page.get_by_role("button", name="Rotate serial key").click()
    expect(page.get_by_role("row").filter(has_text="yes")).to_have_count(1)
    page.get_by_role("button", name="New API key").click()
    api_key = page.locator("#secret-value").input_value()
    assert api_key.startswith("iotk_")

    # 4. invite a publisher: the email arrives, the publisher accepts and signs in
    page.goto(f"{site.url}/stores/{product}/members")
    publisher_email = f"{unique('pub')}@example.com"
    page.locator("#invite-form").get_by_label("Email").fill(publisher_email)
    page.locator("#invite-form").get_by_label("Role").select_option("publisher")
    page.get_by_role("button", name="Send invitation").click()
    expect(page.get_by_role("row").filter(has_text=publisher_email)).to_be_visible()
    [body] = site.mail_to(publisher_email)
    link = re.search(r"http://\S+/invitations/accept\?token=[\w-]+", body)
    assert link, body
    publisher = _new_page(page)
    publisher.goto(link.group(0))
    publisher.get_by_label("Your name").fill("Pat Publisher")
    publisher.get_by_label("Password").fill(PASSWORD)
    publisher.get_by_role("button", name="Accept invitation").click()
    publisher.wait_for_url(re.compile(r"/sign-in\?next="))
    publisher.get_by_label("Email").fill(publisher_email)
    publisher.get_by_label("Password").fill(PASSWORD)
    publisher.get_by_role("button", name="Sign in", exact=True).click()
    publisher.wait_for_url(f"{site.url}/stores/{product}")

    # 5. the publisher registers the name and makes a token for the command line
    snap = unique("hello")
    publisher.goto(f"{site.url}/stores/{product}/snaps")
    publisher.locator("#register-snap-form").get_by_label("Snap name").fill(snap)
    publisher.get_by_role("button", name="Register").click()
    publisher.wait_for_url(f"{site.url}/stores/{product}/snaps/{snap}")
    publisher.goto(f"{site.url}/stores/{product}/snaps")
    expect(publisher.get_by_role("link", name=snap)).to_be_visible()
    shoot(publisher, "snaps")
    publisher.goto(f"{site.url}/tokens")
    publisher.get_by_label("Description").fill("upload from my laptop")
    publisher.get_by_role("button", name="Create token").click()
    token = publisher.locator("#secret-value").input_value()

    # 6. ... and uploads with the CLI: the revision waits for review
    snap_file = build_snap(tmp_path, snap, "1.0")
    uploaded = _cli(site, token, "snap", "upload", str(snap_file))
    assert uploaded.returncode == 0, uploaded.stdout + uploaded.stderr
    assert "waits for a reviewer" in uploaded.stdout, uploaded.stdout

    # 7. a reviewer accepts it in the browser
    reviewer_email = site.local_person({product: "reviewer"}, name="Rita Reviewer")
    reviewer = _new_page(page)
    sign_in(reviewer, site, reviewer_email, f"/stores/{product}/review")
    expect(reviewer.get_by_role("row").filter(has_text=snap)).to_contain_text("1.0")
    shoot(reviewer, "review-queue")
    reviewer.get_by_role("button", name="Accept").click()
    expect(reviewer.get_by_text("Nothing waits for review.")).to_be_visible()

    # 8. the publisher releases it to stable in the browser
    publisher.goto(f"{site.url}/stores/{product}/snaps/{snap}")
    expect(publisher.get_by_role("row").filter(has_text="approved")).to_be_visible()
    release = publisher.locator("#release-form")
    release.get_by_label("Channels").fill("latest/stable")
    release.get_by_role("button", name="Release").click()
    channel_map = publisher.locator("#channel-map")
    expect(channel_map.get_by_role("row").filter(has_text="latest/stable")).to_contain_text("1.0")

    # 9. a device with snapd's code registers with the model and installs the snap
    seed = _model_seed(site, brand_id, "kiosk", tmp_path / "model.seed")
    key = tmp_path / "device.pem"
    registration = DeviceReg().register(
        url=f"{site.url}/serial-vault/v1", model=seed,
        trusted=site.deployment.data_dir / "root.assert", api_key=api_key, save_key=key,
        bits=2048, serial="KIOSK-0001",
    )  # fmt: skip
    assert registration.ok, registration.error
    serial = tmp_path / "serial.assert"
    serial.write_text(registration.serial_assertion)
    report = _store_client(
        site, seed, serial, key, {"op": "install", "name": snap, "channel": "stable"}
    )
    [install] = report["steps"]
    assert install["ok"], install
    assert install["revision"] == 1

    # 10. the administrator sees the device and the release
    page.goto(f"{site.url}/stores/{product}/devices")
    device_row = page.get_by_role("row").filter(has_text="KIOSK-0001")
    expect(device_row).to_contain_text("kiosk")
    expect(device_row).to_contain_text(f"{snap} r1")  # what the store sent it
    shoot(page, "story-devices")
    page.goto(f"{site.url}/stores/{product}/snaps/{snap}")
    expect(
        page.locator("#channel-map").get_by_role("row").filter(has_text="latest/stable")
    ).to_be_visible()
    shoot(page, "story-snap")
    page.goto(f"{site.url}/stores/{product}")
    expect(page.locator("#devices-h + figure desc")).to_contain_text("1 in all")
    expect(page.locator("#refresh-h + figure desc")).to_contain_text("1 in all")
    shoot(page, "story-store")
    publisher.context.close()
    reviewer.context.close()
