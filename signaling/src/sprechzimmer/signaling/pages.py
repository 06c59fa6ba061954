"""HTML pages and static files of the browser client, and the security headers of every response.

Routes: ``/`` (start page: practice handle + access code), ``/j`` (invitation link landing; the
token stays in the URL fragment, which browsers never send), ``/call`` (call page after code
entry), ``/test`` (connection test, no code; its credentials come from ``connectiontest.py``),
``/static/`` (the ES modules, CSS and images). Text comes from ``static/i18n.json``
(German default, ``?lang=en`` English), rendered into the templates here so a page reads right
before any script runs; the scripts read the same strings from a JSON data block.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

_HERE = Path(__file__).parent
STATIC_DIR = _HERE / "static"
TEMPLATES_DIR = _HERE / "templates"
LANGUAGES = ("de", "en")
DEFAULT_LANGUAGE = "de"
PAGES = ("start", "call", "connectiontest")

_PLACEHOLDER = re.compile(r"\{\{\s*([a-zA-Z0-9_.]+)\s*\}\}")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]


def load_strings() -> dict[str, dict[str, str]]:
    """The UI strings per language from ``static/i18n.json`` (shared with the scripts)."""
    strings: dict[str, dict[str, str]] = json.loads((STATIC_DIR / "i18n.json").read_text("utf-8"))
    return strings


def render(template: str, strings: Mapping[str, str], extra: Mapping[str, str]) -> str:
    """Fill ``{{key}}`` placeholders, HTML-escaped; an unknown key is a bug and raises KeyError."""

    def one(match: re.Match[str]) -> str:
        key = match.group(1)
        value = extra[key] if key in extra else strings[key]
        return html.escape(value, quote=True)

    return _PLACEHOLDER.sub(one, template)


def language(request: web.Request) -> str:
    lang = request.query.get("lang", DEFAULT_LANGUAGE)
    return lang if lang in LANGUAGES else DEFAULT_LANGUAGE


class _Pages:
    """Pre-rendered pages: three pages by two languages, built once at start. Each page is its
    template (the ``<main>``) inside ``layout.html`` (head, header, language switch)."""

    def __init__(self) -> None:
        strings = load_strings()
        layout = (TEMPLATES_DIR / "layout.html").read_text("utf-8")
        self._html: dict[tuple[str, str], bytes] = {}
        for name in PAGES:
            page = layout.replace("<!-- page -->\n", (TEMPLATES_DIR / f"{name}.html").read_text())
            for lang in LANGUAGES:
                extra = {
                    "lang": lang,
                    "other_lang": next(x for x in LANGUAGES if x != lang),
                    "page": name,
                    "title": strings[lang][f"title.{name}"],
                    "strings_json": json.dumps(strings[lang], ensure_ascii=False),
                }
                self._html[(name, lang)] = render(page, strings[lang], extra).encode()

    def handler(self, name: str) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            body = self._html[(name, language(request))]
            return web.Response(
                body=body,
                content_type="text/html",
                charset="utf-8",
                headers={"Cache-Control": "no-store"},
            )

        return handle


def setup_routes(app: web.Application) -> None:
    """Register ``/``, ``/j``, ``/call``, ``/test`` and ``/static/`` on *app*."""
    pages = _Pages()
    app.router.add_get("/", pages.handler("start"))
    app.router.add_get("/j", pages.handler("call"))
    app.router.add_get("/call", pages.handler("call"))
    app.router.add_get("/test", pages.handler("connectiontest"))
    app.router.add_static("/static/", STATIC_DIR, append_version=False)


def content_security_policy(public_url: str | None) -> str:
    """The page CSP: nothing but this origin; WebSocket to this host only."""
    connect = ["'self'"]
    if public_url:
        parts = urlsplit(public_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        connect.append(f"{scheme}://{parts.netloc}")
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data: blob:",
            "media-src 'self' blob:",
            f"connect-src {' '.join(connect)}",
            "object-src 'none'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "form-action 'self'",
        ]
    )


def security_headers(public_url: str | None) -> Middleware:
    """Middleware adding CSP and the other security headers to every response, errors included."""
    headers = {
        "Content-Security-Policy": content_security_policy(public_url),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Permissions-Policy": (
            "camera=(self), microphone=(self), display-capture=(self), geolocation=(), "
            "payment=(), usb=()"
        ),
        "X-Frame-Options": "DENY",
        "Cross-Origin-Opener-Policy": "same-origin",
    }

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            exc.headers.update(headers)
            raise
        if not response.prepared:  # a WebSocket has sent its headers already
            # A stricter policy set by the handler (an SVG logo's) is kept.
            for name, value in headers.items():
                response.headers.setdefault(name, value)
        return response

    return middleware
