"""Properties of what the dashboard parses and draws: forms, pasted allow-lists, charts.

Hypothesis drives the pure helpers directly, and throws arbitrary form fields
and query strings at the pages of a signed-in administrator: the answer is a
page or a form with errors, never a server error.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from iotstore.web.dashboard._charts import bar_chart, daily_counts, progress_bar
from iotstore.web.dashboard._render import Form
from iotstore.web.dashboard._vault import _with_header

from .._support import World
from .test_pages import Browser, _person

SVG = "{http://www.w3.org/2000/svg}"
texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=40)


def _parse_svg(markup: str) -> ET.Element:
    # the inline SVG has no namespace declaration in HTML; add it to parse as XML
    return ET.fromstring(markup.replace("<svg ", f'<svg xmlns="{SVG[1:-1]}" ', 1))


@given(st.lists(st.tuples(texts, st.integers(min_value=0, max_value=10**6)), max_size=40))
def test_bar_charts_are_well_formed_and_labelled(points: list[tuple[str, int]]) -> None:
    svg = _parse_svg(str(bar_chart("A <title>", "the & description", points)))
    assert svg.attrib["role"] == "img"
    assert svg.find(f"{SVG}title") is not None and svg.find(f"{SVG}desc") is not None
    bars = svg.findall(f"{SVG}rect")
    assert len(bars) == len(points)
    for bar, (label, value) in zip(bars, points, strict=True):
        assert float(bar.attrib["height"]) >= 0
        title = bar.find(f"{SVG}title")
        assert title is not None and title.text == f"{label}: {value}"


@given(st.floats(allow_nan=False), texts)
def test_progress_bars_stay_inside_their_track(percent: float, title: str) -> None:
    svg = _parse_svg(str(progress_bar(title, percent)))
    fill = svg.findall(f"{SVG}rect")[1]
    assert 0 <= float(fill.attrib["width"]) <= 200


@given(
    st.lists(
        st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1)),
        max_size=200,
    ),
    st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 1, 1)),
    st.integers(min_value=1, max_value=60),
)
def test_daily_counts_count_each_moment_of_the_window_once(
    moments: list[datetime], last: date, days: int
) -> None:
    aware = [m.replace(tzinfo=UTC) for m in moments]
    points = daily_counts(aware, last, days)
    assert len(points) == days
    assert points[-1][0] == last.isoformat()
    first = last - timedelta(days=days - 1)
    assert sum(n for _, n in points) == sum(1 for m in aware if first <= m.date() <= last)


@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), texts), max_size=20))
def test_form_fields_keep_every_value_and_the_last_wins(items: list[tuple[str, str]]) -> None:
    form = Form(items)
    for name in ("a", "b", "c"):
        values = [v for k, v in items if k == name]
        assert form.getlist(name) == values
        assert form.get(name, "-") == (values[-1] if values else "-")
        assert form.checked(name) == bool(values)
    assert set(form.data("a", "b", "c")) == {k for k, _ in items}


serials = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9.:+-]{0,20}", fullmatch=True)


@given(st.lists(serials, max_size=20).filter(lambda s: not s or s[0].lower() != "serial"))
def test_pasted_serials_become_a_csv_with_a_header(pasted: list[str]) -> None:
    lines = _with_header("\n".join(pasted)).splitlines()
    assert lines[0] == "serial,device-key"
    assert [line for line in lines[1:] if line] == pasted


def test_a_pasted_csv_with_its_header_is_kept() -> None:
    text = "serial,device-key\nSN-1,\n"
    assert _with_header(text) == text


@pytest.fixture(scope="module")
def signed_in(module_world: World) -> Iterator[tuple[Browser, str]]:
    _, store = module_world.factory.brand()
    browser = Browser(module_world, _person(module_world, {store: "admin"}).email)
    yield browser, store
    browser.close()


FIELD_NAMES = [
    "id", "name", "kind", "email", "role", "snap_id", "description", "stores", "expires_days",
    "permissions", "bits", "confirm", "entries", "channels", "revision",
]  # fmt: skip
fields = st.dictionaries(st.sampled_from(FIELD_NAMES), texts, max_size=6)
FORM_POSTS = [
    "/stores/{store}/substores", "/stores/{store}/invitations", "/stores/{store}/settings",
    "/stores/{store}/includes", "/stores/{store}/excludes", "/stores/{store}/members",
    "/stores/{store}/brand/keys/nope/disable", "/stores/{store}/models", "/tokens",
    "/stores/{store}/snaps",
]  # fmt: skip


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.sampled_from(FORM_POSTS), fields)
def test_arbitrary_forms_never_break_a_page(
    signed_in: tuple[Browser, str], path: str, data: dict[str, str]
) -> None:
    browser, store = signed_in
    response = browser.post(path.format(store=store), data)
    assert response.status_code < 500, response.text[:500]


QUERIES = [
    "/sign-in?next=", "/invitations/accept?token=", "/stores/{store}/audit?action=",
    "/stores/{store}/devices?search=", "/stores/{store}/signing-log?search=",
]  # fmt: skip


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.sampled_from(QUERIES), texts)
def test_arbitrary_queries_never_break_a_page(
    signed_in: tuple[Browser, str], path: str, value: str
) -> None:
    browser, store = signed_in
    response = browser.get(path.format(store=store) + quote(value, safe=""))
    assert response.status_code < 500, response.text[:500]


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.dates(), st.dates())
@example(date.max, date.max)  # the calendar's last day has no day after it to end at
def test_any_audit_date_range_renders(
    signed_in: tuple[Browser, str], since: date, until: date
) -> None:
    browser, store = signed_in
    response = browser.get(f"/stores/{store}/audit?since={since}&until={until}")
    assert response.status_code == 200, response.text[:500]
