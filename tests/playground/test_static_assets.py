"""The studio page's files: served over a real server with the right types, and packaged.

The page is markup (``static/index.html``), style sheets (``static/css/``) and ES modules
(``static/js/``, entry ``main.js``) that import each other by relative path; no build step, no CDN.
Browsers load module scripts in CORS mode, so those requests carry the page's own ``Origin``: the
server's browser guard must let its own origin through, and the API key must not be needed.
"""

from __future__ import annotations

import re
import tomllib
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "cgstudio"
STATIC = PACKAGE / "server" / "static"
JS_TYPES = ("text/javascript", "application/javascript")  # both are JavaScript MIME types to browsers
IMPORT_RE = re.compile(r"""^\s*import\s+(?:[^'"]*?\sfrom\s+)?['"]([^'"]+)['"]""", re.M)


class _Refs(HTMLParser):
    """The style sheets and scripts a page names."""

    def __init__(self) -> None:
        super().__init__()
        self.styles: list[str] = []
        self.scripts: list[tuple[str, str | None]] = []  # (src, type)
        self.inline_scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "link" and a.get("rel") == "stylesheet" and a.get("href"):
            self.styles.append(a["href"] or "")
        elif tag == "script":
            if a.get("src"):
                self.scripts.append((a["src"] or "", a.get("type")))
            else:
                self.inline_scripts += 1


def _same_origin(base: str, url: str) -> bool:
    return urlsplit(url)[:2] == urlsplit(base)[:2]


def _media(response: httpx.Response) -> str:
    return response.headers.get("content-type", "").partition(";")[0].strip().lower()


def test_page_and_every_asset_are_served_with_their_types(studio: Any) -> None:
    origin = studio.url
    # No API key (the page itself has none yet); the Origin a browser sends for module scripts.
    with httpx.Client(timeout=30, headers={"Origin": origin}) as client:
        page = client.get(origin + "/")
        assert page.status_code == 200
        assert _media(page) == "text/html"
        refs = _Refs()
        refs.feed(page.text)
        assert refs.inline_scripts == 0, "the behaviour lives in /static/js/"
        assert refs.styles, "no style sheets referenced"
        assert [t for _, t in refs.scripts] == ["module"], refs.scripts

        fetched: dict[str, str] = {}
        for href in refs.styles:
            url = urljoin(str(page.url), href)
            assert _same_origin(origin, url), f"{href} is not served by the studio (no CDN)"
            r = client.get(url)
            assert r.status_code == 200, (url, r.status_code, r.text[:200])
            assert _media(r) == "text/css", (url, r.headers.get("content-type"))
            fetched[url] = "css"

        queue = [urljoin(str(page.url), src) for src, _ in refs.scripts]
        while queue:
            url = queue.pop()
            if url in fetched:
                continue
            assert _same_origin(origin, url), f"{url} is not served by the studio (no CDN)"
            r = client.get(url)
            assert r.status_code == 200, (url, r.status_code, r.text[:200])
            assert _media(r) in JS_TYPES, (url, r.headers.get("content-type"))
            fetched[url] = "js"
            for spec in IMPORT_RE.findall(r.text):
                assert spec.startswith("./"), (
                    f"{url} imports {spec!r}: modules import each other by relative path"
                )
                queue.append(urljoin(url, spec))

    served = {urlsplit(u).path.removeprefix("/static/") for u in fetched}
    on_disk = {p.relative_to(STATIC).as_posix() for p in STATIC.rglob("*") if p.is_file()} - {"index.html"}
    assert served == on_disk, (
        f"not referenced: {sorted(on_disk - served)}; missing: {sorted(served - on_disk)}"
    )


def test_a_foreign_origin_is_still_refused_for_static_files(studio: Any) -> None:
    r = httpx.get(studio.url + "/static/js/main.js", headers={"Origin": "http://evil.example"}, timeout=30)
    assert r.status_code == 403


def test_the_browser_loads_every_module_with_its_own_origin(studio: Any, browser: Any) -> None:
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        answers: dict[str, tuple[int, str | None]] = {}
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on(
            "response",
            lambda r: answers.__setitem__(r.url, (r.status, r.request.all_headers().get("origin"))),
        )
        page.goto(studio.url + "/")
        # main.js ran: it built the parameter fields and asked the server for its models.
        page.wait_for_selector("#sampling-fields .field")
        statics = {u: a for u, a in answers.items() if urlsplit(u).path.startswith("/static/")}
        modules = {u: a for u, a in statics.items() if u.endswith(".js")}
        assert len(modules) == len(list((STATIC / "js").glob("*.js"))), sorted(modules)
        assert all(status == 200 for status, _ in statics.values()), statics
        # Module scripts are fetched in CORS mode: Chromium names the page's origin on each, and the
        # browser guard lets the server's own origin through (a 403 here would break the page).
        assert all(o == studio.url for _, o in modules.values()), modules
        assert not errors, errors
    finally:
        ctx.close()


def test_the_package_data_covers_every_static_file() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["cgstudio"]
    packaged = {p for pattern in patterns for p in PACKAGE.glob(pattern) if p.is_file()}
    missing = sorted(
        p.relative_to(PACKAGE).as_posix() for p in STATIC.rglob("*") if p.is_file() and p not in packaged
    )
    assert not missing, f"pyproject.toml [tool.setuptools.package-data] leaves out {missing}"


@pytest.mark.parametrize("name", sorted(p.name for p in (STATIC / "js").glob("*.js")))
def test_modules_stay_small(name: str) -> None:
    assert len((STATIC / "js" / name).read_text().splitlines()) < 400
