"""The dashboard in a real browser: Debian's Chromium driven by Playwright.

Each test is a piece of the administrators' story: sign in (local password and
single sign-on at the real panva provider), walk the store tree, create a
product sub-store, invite a publisher whose email arrives at the SMTP server
and who accepts it in the browser, set up the serial vault (brand key, model,
API key, allow-list), read the audit log. Every main page is saved as a
screenshot (``tests/web/dashboard/.screenshots``). Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, expect

from .._support import PASSWORD, unique
from ._browser import Site, sign_in, through_provider

Shoot = Callable[[Page, str], Path]


def _admin_with_store(site: Site) -> tuple[str, str, str]:
    """A brand root store with one sub-store, and an administrator of it: (email, root, sub)."""
    _, root = site.factory.brand()
    sub = site.factory.substore(root, kind="ecosystem")
    email = site.local_person({root: "admin"})
    return email, root, sub


def test_anonymous_browsers_are_sent_to_sign_in(page: Page, site: Site) -> None:
    page.goto(f"{site.url}/tokens")
    expect(page).to_have_url(re.compile(r"/sign-in\?next=%2Ftokens$"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_role("link", name="Sign in with Test sign-on")).to_be_visible()


def test_wrong_password_says_so_on_the_form(page: Page, site: Site) -> None:
    email = site.local_person()
    page.goto(f"{site.url}/sign-in")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("alert")).to_have_text("Wrong email or password.")
    expect(page.get_by_label("Email")).to_have_attribute("aria-invalid", "true")


def test_local_sign_in_store_tree_and_sign_out(page: Page, site: Site, shoot: Shoot) -> None:
    email, root, sub = _admin_with_store(site)
    page.goto(f"{site.url}/sign-in")
    shoot(page, "sign-in")
    sign_in(page, site, email)
    tree = page.get_by_role("list", name="Stores and sub-stores")
    expect(tree.get_by_role("link", name=f"Store {root}")).to_be_visible()
    expect(tree.get_by_role("link", name=f"Store {sub}")).to_be_visible()
    shoot(page, "home")
    tree.get_by_role("link", name=f"Store {sub}").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Store {sub}")
    # an administrator of the parent sees every tab of the sub-store
    tabs = page.get_by_role("navigation", name="Store")
    for tab in ("Overview", "Members", "Curation", "Devices", "Audit log", "Settings"):
        expect(tabs.get_by_role("link", name=tab, exact=True)).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{site.url}/sign-in")
    page.goto(f"{site.url}/")
    expect(page).to_have_url(re.compile(r"/sign-in\?next=%2F$"))


def test_single_sign_on_then_create_a_product_substore(
    page: Page, site: Site, shoot: Shoot
) -> None:
    _, root = site.factory.brand()
    login = unique("ada")
    # the provider's verified address for this login: the account it links to
    site.factory.person({root: "admin"}, email=f"{login}@example.test", display_name="Ada SSO")
    page.goto(f"{site.url}/stores/{root}")
    expect(page).to_have_url(re.compile(r"/sign-in\?next="))
    page.get_by_role("link", name="Sign in with Test sign-on").click()
    through_provider(page, site, login)
    page.wait_for_url(f"{site.url}/stores/{root}")
    expect(page.get_by_role("banner")).to_contain_text("Ada SSO")
    shoot(page, "store")

    form = page.locator("#substore-form")
    form.get_by_label("Store id").fill("bad id!")
    form.get_by_label("Name").fill("Kiosk line")
    form.get_by_label("Kind").select_option("product")
    # the browser's own pattern check stops the bad id before it is sent
    form.get_by_role("button", name="Create sub-store").click()
    expect(page.locator("#substore-form #f-id:invalid")).to_have_count(1)
    new_id = unique("kiosk")
    form.get_by_label("Store id").fill(root)  # taken: the server says so next to the field
    form.get_by_role("button", name="Create sub-store").click()
    error = page.locator("#e-id")
    expect(error).to_contain_text("exists already")
    expect(page.locator("#substore-form #f-id")).to_have_attribute("aria-invalid", "true")
    page.locator("#substore-form #f-id").fill(new_id)
    page.locator("#substore-form").get_by_role("button", name="Create sub-store").click()
    page.wait_for_url(f"{site.url}/stores/{new_id}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Kiosk line")
    crumbs = page.get_by_role("navigation", name="Breadcrumb")
    expect(crumbs.get_by_role("link", name=f"Store {root}")).to_be_visible()
    expect(page.locator(".kind-product").first).to_be_visible()


def test_invite_a_publisher_who_accepts_in_the_browser(
    page: Page, site: Site, shoot: Shoot
) -> None:
    email, root, _ = _admin_with_store(site)
    sign_in(page, site, email, f"/stores/{root}/members")
    invitee = f"{unique('pub')}@example.com"
    form = page.locator("#invite-form")
    form.get_by_label("Email").fill(invitee)
    form.get_by_label("Role").select_option("publisher")
    form.get_by_role("button", name="Send invitation").click()
    row = page.get_by_role("row").filter(has_text=invitee)
    expect(row).to_contain_text("publisher")
    shoot(page, "members")

    bodies = site.mail_to(invitee)
    assert len(bodies) == 1, bodies
    link = re.search(rf"{re.escape(site.url)}/invitations/accept\?token=[\w-]+", bodies[0])
    assert link, bodies[0]

    publisher = page.context.browser.new_context()  # type: ignore[union-attr]
    try:
        other = publisher.new_page()
        other.goto(link.group(0))
        other.get_by_label("Your name").fill("Pat Publisher")
        other.get_by_label("Password").fill("short")
        other.get_by_role("button", name="Accept invitation").click()
        # the browser holds a too-short password back (minlength), before the server would
        expect(other.locator("#f-password:invalid")).to_have_count(1)
        other.get_by_label("Password").fill(PASSWORD)
        other.get_by_role("button", name="Accept invitation").click()
        other.wait_for_url(re.compile(r"/sign-in\?next="))
        other.get_by_label("Email").fill(invitee)
        other.get_by_label("Password").fill(PASSWORD)
        other.get_by_role("button", name="Sign in", exact=True).click()
        other.wait_for_url(f"{site.url}/stores/{root}")
        tabs = other.get_by_role("navigation", name="Store")
        # a publisher gets the tabs of its permissions and no administration
        expect(tabs.get_by_role("link", name="Snaps")).to_be_visible()
        expect(tabs.get_by_role("link", name="Members")).to_be_visible()
        expect(tabs.get_by_role("link", name="Settings")).to_have_count(0)
        expect(tabs.get_by_role("link", name="Models")).to_have_count(0)
        other.goto(f"{site.url}/stores/{root}/members")
        expect(other.locator("#invite-form")).to_have_count(0)
        other.goto(f"{site.url}/stores/{root}/settings")
        expect(other.get_by_role("heading", name="Not allowed")).to_be_visible()
    finally:
        publisher.close()
    page.reload()
    expect(page.get_by_role("row").filter(has_text=invitee)).to_contain_text("publisher")


def test_vault_brand_key_model_api_key_and_allowlist(page: Page, site: Site, shoot: Shoot) -> None:
    email, root, sub = _admin_with_store(site)
    page.on("dialog", lambda dialog: dialog.accept())
    sign_in(page, site, email, f"/stores/{root}/brand")
    form = page.locator("#key-form")
    form.get_by_label("Key name").fill("serials")
    form.get_by_label("Size (bits)").select_option("2048")
    form.get_by_role("button", name="Generate").click()
    expect(page.get_by_role("row").filter(has_text="serials")).to_contain_text("active")
    shoot(page, "brand-keys")

    page.get_by_role("navigation", name="Store").get_by_role("link", name="Models").click()
    model = page.locator("#model-form")
    model.get_by_label("Model name").fill("kiosk-1")
    model.get_by_label("Store of its devices").select_option(sub)
    model.get_by_role("button", name="Sign model").click()
    page.wait_for_url(f"{site.url}/stores/{root}/models/kiosk-1")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Model kiosk-1")
    page.locator("#api-key-form").get_by_label("Label").fill("factory line 2")
    page.get_by_role("button", name="New API key").click()
    secret = page.locator("#secret-value")
    expect(secret).not_to_have_value("")
    assert len(secret.input_value()) > 20
    page.locator("#allowlist-form").get_by_label("Add serials").fill("SN-0001\nSN-0002")
    page.get_by_role("button", name="Add to allow-list").click()
    expect(page.get_by_role("heading", name=re.compile("Allow-list"))).to_contain_text("(2)")
    shoot(page, "model")
    page.get_by_role("link", name="Models", exact=True).click()
    expect(page.get_by_role("link", name="kiosk-1")).to_be_visible()
    shoot(page, "models")

    # a destructive action asks for the key's name typed again
    page.goto(f"{site.url}/stores/{root}/brand")
    page.get_by_text("Disable or revoke…").click()
    disable = page.locator("form.confirm-form").filter(has_text="Disabling")
    disable.get_by_label(re.compile("Type serials")).fill("wrong")
    disable.get_by_role("button", name="Disable serials").click()
    expect(page.locator("form.confirm-form .error-text").first).to_be_visible()
    expect(page.get_by_role("row").filter(has_text="serials")).to_contain_text("active")

    for tab, name in (("Devices", "devices"), ("Signing log", "signing-log")):
        page.get_by_role("navigation", name="Store").get_by_role("link", name=tab).click()
        expect(page.get_by_role("heading", level=1)).to_have_text(tab)
        shoot(page, name)
    expect(page.get_by_role("link", name="Export CSV")).to_have_attribute(
        "href", re.compile(r"signing-log\?format=csv")
    )


def test_audit_log_settings_curation_and_tokens(page: Page, site: Site, shoot: Shoot) -> None:
    email, root, sub = _admin_with_store(site)
    page.on("dialog", lambda dialog: dialog.accept())
    sign_in(page, site, email, f"/stores/{sub}/settings")
    form = page.locator("#settings-form")
    form.get_by_label("Store name").fill("Partner shop")
    form.get_by_label("Manual review").check()
    form.get_by_role("button", name="Save settings").click()
    page.wait_for_url(re.compile(r"/settings\?saved=1$"))
    expect(page.get_by_role("status").filter(has_text="Settings saved.")).to_be_visible()
    expect(page.get_by_label("Manual review")).to_be_checked()
    shoot(page, "settings")

    page.goto(f"{site.url}/stores/{sub}/curation")
    page.locator("#exclude-form").get_by_label("Snap id").fill("x" * 32)
    page.locator("#exclude-form").get_by_role("button", name="Exclude").click()
    expect(page.get_by_role("button", name="Show again")).to_be_visible()
    shoot(page, "curation")

    page.goto(f"{site.url}/stores/{root}/audit")
    rows = page.get_by_role("row")
    expect(rows.filter(has_text="store.update")).to_have_count(1)
    expect(rows.filter(has_text="exclude")).not_to_have_count(0)
    expect(rows.filter(has_text="store.update")).to_contain_text(email)
    shoot(page, "audit")
    page.get_by_label("Action").fill("store.update")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("row")).to_have_count(2)  # header + the one entry

    page.goto(f"{site.url}/tokens")
    page.get_by_label("Description").fill("CI upload")
    page.get_by_label("Only these stores (optional)").fill(root)
    page.get_by_label("snap:upload").check()
    page.get_by_role("button", name="Create token").click()
    expect(page.locator("#secret-value")).not_to_have_value("")
    page.get_by_role("link", name="Done").click()
    row = page.get_by_role("row").filter(has_text="CI upload")
    expect(row).to_contain_text("snap:upload")
    shoot(page, "tokens")
    row.get_by_role("button", name="Revoke").click()
    expect(page.get_by_role("row").filter(has_text="CI upload")).to_contain_text("revoked")


def test_tablet_width_keeps_every_tab_reachable(page: Page, site: Site, shoot: Shoot) -> None:
    email, root, _ = _admin_with_store(site)
    page.set_viewport_size({"width": 768, "height": 1024})
    sign_in(page, site, email, f"/stores/{root}")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 768, f"the page scrolls sideways at tablet width: {width}px"
    tabs = page.get_by_role("navigation", name="Store")
    tabs.get_by_role("link", name="Audit log").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Audit log")
    shoot(page, "tablet-audit")
    # keyboard: the skip link is the first stop and lands on the main content
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()


def test_operator_creates_a_brand_then_changes_a_role_in_one_step(
    page: Page, site: Site, shoot: Shoot
) -> None:
    operator = site.local_person(name="Olu Operator", operator=True)
    page.on("dialog", lambda dialog: dialog.accept())
    sign_in(page, site, operator, "/operator")
    shoot(page, "operator")
    store_id = unique("brand-store")
    form = page.locator("#brand-form")
    form.get_by_label("Brand username").fill(unique("acme"))
    form.get_by_label("Display name").fill("Acme Devices")
    form.get_by_label("Root store id").fill(store_id)
    form.get_by_role("button", name="Create brand").click()
    page.wait_for_url(f"{site.url}/stores/{store_id}")

    member = site.local_person(name="Vic Viewer")
    page.goto(f"{site.url}/stores/{store_id}/members")
    grant = page.locator("#grant-form")
    grant.get_by_label("Email of an existing account").fill(member)
    grant.get_by_label("Role").select_option("viewer")
    grant.get_by_role("button", name="Grant role").click()
    row = page.get_by_role("row").filter(has_text=member)
    expect(row).to_contain_text("viewer")
    row.get_by_label("New role").select_option("publisher")
    row.get_by_label("In place of").select_option("viewer")
    row.get_by_role("button", name="Apply").click()
    row = page.get_by_role("row").filter(has_text=member)
    expect(row.locator(".role")).to_have_text([re.compile(r"^publisher\b")])
    page.locator("#invite-form").get_by_label("Email").fill(f"{unique('p')}@example.com")
    page.locator("#invite-form").get_by_role("button", name="Send invitation").click()
    expect(page.get_by_role("button", name="Withdraw")).to_have_count(1)
    page.get_by_role("button", name="Withdraw").click()
    expect(page.get_by_text("No pending invitations.")).to_be_visible()
    page.get_by_role("link", name="Show accepted, withdrawn and expired ones too").click()
    expect(page.locator(".state-revoked")).to_have_text("withdrawn")
    shoot(page, "members-history")
