"""Rendering for the dashboard: templates, the page's permissions, forms and their errors.

Pages are Jinja2 templates rendered on the server; changes go through htmx
requests that carry the session's CSRF token in ``X-CSRF-Token`` (set once on
``<body hx-headers>``), which ``web.auth.authenticate`` checks. A form that
cannot be applied is answered with the form again, its errors next to the
fields, by raising :class:`FormRejected`: the exception rolls the request's
transaction back (nothing half-written) before the form is sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ValidationError

from iotstore.errors import IotstoreError
from iotstore.stores.models import Store
from iotstore.stores.permissions import Permission

from ..auth import SESSION_COOKIE, sessions
from ..context import RequestContext

__all__ = [
    "HTML_PAGE",
    "Form",
    "FormRejected",
    "form_fields",
    "granted",
    "parse",
    "redirect",
    "refused",
    "reject",
    "render",
    "render_error",
    "render_fragment",
]

TEMPLATES = Path(__file__).resolve().parent / "templates"
_FORM_MEDIA = ("application/x-www-form-urlencoded", "multipart/form-data")
MAX_FIELDS = 200
HTML_PAGE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/html": {}}, "description": "The page (HTML)."}
}
"""The OpenAPI ``responses`` of a page route."""
_M = TypeVar("_M", bound=BaseModel)

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=jinja2.select_autoescape(default=True),
    undefined=jinja2.StrictUndefined,  # a misspelt variable fails the page tests
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["q"] = lambda value: quote(str(value), safe="")


def _when(value: Any) -> str:
    if value is None:
        return "—"
    return str(value.strftime("%Y-%m-%d %H:%M UTC"))


_env.filters["when"] = _when


class Form:
    """The fields of a submitted form (urlencoded or multipart; files ignored)."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items = list(items)

    def get(self, name: str, default: str = "") -> str:
        """The last value of ``name``, or ``default``."""
        for key, value in reversed(self._items):
            if key == name:
                return value
        return default

    def getlist(self, name: str) -> list[str]:
        """Every value of ``name`` (checkboxes, multiple selects)."""
        return [value for key, value in self._items if key == name]

    def data(self, *names: str) -> dict[str, str]:
        """The named fields that were sent (absent ones are left out, so defaults apply)."""
        sent = {key for key, _ in self._items}
        return {name: self.get(name) for name in names if name in sent}

    def checked(self, name: str) -> bool:
        """Whether a checkbox was ticked."""
        return name in {key for key, _ in self._items}


async def form_fields(request: Request) -> Form:
    """The request's form fields; an empty form for any other body (the route then refuses)."""
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media not in _FORM_MEDIA:
        return Form()
    form = await request.form(max_files=0, max_fields=MAX_FIELDS)
    return Form((k, v) for k, v in form.multi_items() if isinstance(v, str))


class FormRejected(Exception):
    """Raised by a route to answer with ``response`` (the form and its errors) and roll back."""

    def __init__(self, response: Response) -> None:
        super().__init__("form rejected")
        self.response = response


def parse(model: type[_M], form: Form, names: Iterable[str], template: str, **values: Any) -> _M:
    """The form validated as ``model``, or :class:`FormRejected` with ``template`` re-rendered.

    ``names`` are the fields read; empty optional fields are left out so defaults apply.
    """
    data = {k: v for k, v in form.data(*names).items() if v != ""}
    try:
        return model.model_validate(data)
    except ValidationError as e:
        errors: dict[str, str] = {}
        for error in e.errors():
            location = [p for p in error["loc"] if isinstance(p, str)]
            errors.setdefault(location[0] if location else "_", str(error["msg"]))
        raise reject(template, form, errors, **values) from e


def reject(template: str, form: Form, errors: Mapping[str, str], **values: Any) -> FormRejected:
    """:class:`FormRejected` answering with ``template`` re-rendered with ``errors``."""
    return FormRejected(
        render_fragment(template, status=422, form=form, errors=dict(errors), **values)
    )


def refused(template: str, form: Form, error: IotstoreError, **values: Any) -> FormRejected:
    """:class:`FormRejected` for a rule the service enforced (shown at its field, or on top)."""
    return reject(template, form, {error.field or "_": error.message}, **values)


def granted(ctx: RequestContext, store_id: str) -> frozenset[Permission]:
    """What the caller may do in ``store_id`` (a token's permission caveat narrows it)."""
    account = ctx.principal.account
    if account is None:
        return frozenset()
    permissions = ctx.memberships.permissions(account.id, store_id)
    token = ctx.principal.token
    if token is not None:
        permissions = frozenset(p for p in permissions if token.carries(p))
    return permissions


def _csrf(ctx: RequestContext) -> str:
    cookie = ctx.request.cookies.get(SESSION_COOKIE)
    if not ctx.principal.via_session or not cookie:
        return ""
    row = sessions(ctx).find(cookie)
    return row.csrf_token if row is not None else ""


# the store's tabs: (label, path below the store, permission that shows it)
TABS: tuple[tuple[str, str, Permission], ...] = (
    ("Overview", "", Permission.STORE_VIEW),
    ("Snaps", "/snaps", Permission.SNAP_VIEW),
    ("Members", "/members", Permission.MEMBERS_VIEW),
    ("Curation", "/curation", Permission.STORE_VIEW),
    ("Brand keys", "/brand", Permission.BRAND_VIEW),
    ("Models", "/models", Permission.VAULT_MANAGE),
    ("Devices", "/devices", Permission.DEVICES_VIEW),
    ("Signing log", "/signing-log", Permission.DEVICES_VIEW),
    ("Audit log", "/audit", Permission.AUDIT_VIEW),
    ("Settings", "/settings", Permission.STORE_MANAGE),
)


def render(
    ctx: RequestContext,
    template: str,
    *,
    store: Store | None = None,
    tab: str = "",
    status: int = 200,
    **values: Any,
) -> HTMLResponse:
    """A whole page for the caller; ``store`` adds its tabs, limited to what they may do."""
    permissions = granted(ctx, store.id) if store is not None else frozenset()
    values.setdefault("errors", {})
    values.setdefault("form", None)
    tabs = [
        (label, f"/stores/{store.id}{path}", label == tab)
        for label, path, needed in TABS
        if store is not None and needed in permissions
    ]
    body = _env.get_template(template).render(
        account=ctx.principal.account,
        csrf=_csrf(ctx),
        store=store,
        tabs=tabs,
        can=lambda name: Permission(name) in permissions,
        path=ctx.request.url.path,
        **values,
    )
    return HTMLResponse(body, status_code=status)


def render_fragment(template: str, *, status: int = 200, **values: Any) -> HTMLResponse:
    """A part of a page (htmx swaps it in); no database access, so it renders after a rollback."""
    values.setdefault("errors", {})
    values.setdefault("form", Form())
    return HTMLResponse(_env.get_template(template).render(**values), status_code=status)


def render_error(status: int, title: str, message: str) -> HTMLResponse:
    """The page a browser gets for an error (no account details: it may be anonymous)."""
    body = _env.get_template("error.html").render(status=status, title=title, message=message)
    return HTMLResponse(body, status_code=status)


def redirect(url: str) -> Response:
    """After a change made through htmx: load ``url`` (the page, now showing the change)."""
    return Response(status_code=200, headers={"HX-Redirect": url})
