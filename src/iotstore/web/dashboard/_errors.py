"""Errors as a browser should see them: pages, a redirect to sign in, htmx-friendly answers.

``web/errors.py`` builds every error response; this module only re-presents
the ones a person's browser asked for. A request is a browser's when it
accepts ``text/html`` (a navigation or form post) or comes from htmx
(``HX-Request``), and is not for the JSON APIs; everything else (scripts,
tokens, the permission matrix) keeps the admin API's JSON error unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from ._render import FormRejected, render_error, render_fragment

__all__ = ["install_browser_errors"]

Handler = Callable[[Request, Exception], Awaitable[Response] | Response]

_TITLES = {
    400: "That did not work",
    401: "Sign in",
    403: "Not allowed",
    404: "Not found",
    409: "Not possible right now",
    413: "Too large",
    422: "That did not work",
    503: "Unavailable",
}
# the JSON APIs and protocols keep their own error shapes whoever calls
_NOT_PAGES = ("/api/", "/serial-vault/", "/v2/", "/dev/", "/static/")


def _from_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def _is_browser(request: Request) -> bool:
    if request.url.path.startswith(_NOT_PAGES):
        return False
    return _from_htmx(request) or "text/html" in request.headers.get("accept", "")


def _sign_in_url(request: Request) -> str:
    # an htmx request's own URL is a fragment: come back to the page it was made from
    if _from_htmx(request):
        current = request.headers.get("hx-current-url", "/")
        target = "/" + current.split("://", 1)[-1].partition("/")[2]
    else:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return f"/sign-in?next={quote(target, safe='')}"


def _message(response: Response) -> str:
    try:
        body = json.loads(bytes(response.body))
        message = body["error"]["message"]
        return str(message)
    except (ValueError, KeyError, TypeError):
        return "The request could not be completed."


def _for_browser(request: Request, response: Response) -> Response:
    status = response.status_code
    if status == 401:
        if request.url.path == "/auth/login" and request.method == "POST":
            return RedirectResponse("/sign-in?failed=1", status_code=303)
        url = _sign_in_url(request)
        if _from_htmx(request):
            return Response(status_code=200, headers={"HX-Redirect": url})
        return RedirectResponse(url, status_code=303)
    title = _TITLES.get(status, "Something went wrong")
    message = _message(response)
    if status >= 500:
        message = "The server could not complete the request; it has been logged."
    if _from_htmx(request):
        # shown in the page's message area instead of the part the request targeted
        fragment = render_fragment("_flash.html", status=status, kind="error", message=message)
        fragment.headers["HX-Retarget"] = "#flash"
        fragment.headers["HX-Reswap"] = "innerHTML"
        return fragment
    return render_error(status, title, message)


def _browser_aware(handler: Handler) -> Handler:
    async def handle(request: Request, exc: Exception) -> Response:
        result = handler(request, exc)
        response = await result if isinstance(result, Awaitable) else result
        if _is_browser(request):
            return _for_browser(request, response)
        return response

    return handle


async def _form_rejected(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, FormRejected)
    del request
    return exc.response


def install_browser_errors(app: FastAPI) -> None:
    """Wrap the app's error handlers (installed before) so browsers get pages."""
    for kind, handler in list(app.exception_handlers.items()):
        if isinstance(kind, type):
            app.exception_handlers[kind] = _browser_aware(handler)
    app.add_exception_handler(FormRejected, _form_rejected)
