"""pages.py: every page renders in both languages, the strings cover the protocol's codes, and
every response (pages, static files, errors) carries the strict CSP and security headers."""

from __future__ import annotations

import re

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sprechzimmer.signaling import pages
from sprechzimmer.signaling.core.protocol import EndReason, ErrorCode

STRINGS = pages.load_strings()
JS_FILES = sorted(pages.STATIC_DIR.rglob("*.js"))
PUBLIC_URL = "https://video.example.org"


@pytest.mark.unit
def test_both_languages_have_the_same_strings_and_none_is_empty() -> None:
    assert set(STRINGS) == set(pages.LANGUAGES)
    assert set(STRINGS["de"]) == set(STRINGS["en"])
    for lang in pages.LANGUAGES:
        assert all(text.strip() for text in STRINGS[lang].values()), lang


@pytest.mark.unit
def test_every_error_code_and_end_reason_of_the_protocol_has_text() -> None:
    for lang in pages.LANGUAGES:
        for code in ErrorCode:
            assert f"error.{code.value}" in STRINGS[lang], (lang, code)
        for reason in EndReason:
            assert f"ended.{reason.value}" in STRINGS[lang], (lang, reason)
    assert STRINGS["de"]["error.unknown-code"].startswith("Zugangscode unbekannt")
    assert "abgelaufen" in STRINGS["de"]["error.expired"]
    assert "{wait}" in STRINGS["de"]["error.rate-limited"]


@pytest.mark.unit
def test_every_string_key_the_scripts_use_exists() -> None:
    used = set()
    for path in JS_FILES:
        used |= set(re.findall(r"""\bt\(\s*"([a-z0-9.\-]+)"\s*[,)]""", path.read_text()))
        # keys chosen by a condition: t(flag ? "a" : "b") and t(onToggle(...)) labels
        prefixes = "consent|controls|error|ended|logo|devices|test"
        used |= set(re.findall(rf'"((?:{prefixes})\.[a-z0-9.\-]+)"', path.read_text()))
    assert used, "no t() calls found: the pattern is stale"
    missing = sorted(used - set(STRINGS["de"]))
    assert not missing


@pytest.mark.unit
def test_pages_render_every_placeholder_and_escape_text() -> None:
    rendered = pages._Pages()
    for name in pages.PAGES:
        for lang in pages.LANGUAGES:
            html = rendered._html[(name, lang)].decode()
            assert "{{" not in html
            assert "}}" not in html
            assert f'<html lang="{lang}"' in html
            assert "<script>" not in html
            assert "style=" not in html
    assert pages.render("{{x}}", {}, {"x": '<b a="1">'}) == "&lt;b a=&quot;1&quot;&gt;"
    with pytest.raises(KeyError):
        pages.render("{{nope}}", {}, {})


@pytest.mark.unit
def test_the_interface_the_browser_tests_rely_on_is_in_the_templates() -> None:
    rendered = pages._Pages()
    start = rendered._html[("start", "de")].decode()
    call = rendered._html[("call", "de")].decode()
    assert 'name="host"' in start
    assert 'name="code"' in start
    assert 'role="alert"' in start
    assert start.count('type="submit"') == 1
    assert 'name="consent"' in call
    assert "data-verification-code" in call
    assert 'role="alert"' in call
    assert "<main data-state=" in call
    test = rendered._html[("connectiontest", "de")].decode()
    for check in ("camera", "microphone", "turn", "bandwidth"):
        assert f'data-check="{check}"' in test
        assert f'role="status" id="test-{check}-result"' in test
    assert 'id="test-start"' in test
    assert 'href="/test?lang=de"' in start  # the start page links the connection test
    assert 'id="connection-test"' in call  # and so does the call page's error panel


@pytest.mark.unit
def test_csp_allows_only_this_origin() -> None:
    csp = pages.content_security_policy(PUBLIC_URL)
    assert "connect-src 'self' wss://video.example.org" in csp
    assert "script-src 'self';" in csp
    assert "'unsafe-inline'" not in csp
    assert "frame-ancestors 'none'" in csp
    assert "base-uri 'none'" in csp
    assert "ws://127.0.0.1:8080" in pages.content_security_policy("http://127.0.0.1:8080")


async def test_every_response_carries_the_security_headers() -> None:
    app = web.Application(middlewares=[pages.security_headers(PUBLIC_URL)])
    pages.setup_routes(app)
    async with TestClient(TestServer(app)) as client:
        for path, status in [
            ("/", 200),
            ("/?lang=en", 200),
            ("/j", 200),
            ("/call?lang=xx", 200),
            ("/test", 200),
            ("/test?lang=en", 200),
            ("/static/connectiontest.css", 200),
            ("/static/call.js", 200),
            ("/static/style.css", 200),
            ("/static/nope.js", 404),
            ("/nope", 404),
        ]:
            response = await client.get(path)
            assert response.status == status, path
            headers = response.headers
            assert headers["Content-Security-Policy"] == pages.content_security_policy(PUBLIC_URL)
            assert headers["X-Content-Type-Options"] == "nosniff"
            assert headers["Referrer-Policy"] == "no-referrer"
            assert "camera=(self)" in headers["Permissions-Policy"]
            assert "microphone=(self)" in headers["Permissions-Policy"]
        page = await client.get("/?lang=en")
        assert '<html lang="en"' in await page.text()
        assert page.headers["Cache-Control"] == "no-store"
        fallback = await client.get("/call?lang=xx")
        assert '<html lang="de"' in await fallback.text()
        script = await client.get("/static/call.js")
        assert script.content_type in ("text/javascript", "application/javascript")
