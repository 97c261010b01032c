"""The browser dashboard: one HTML page and its scripts and styles, from `web/static/`.

These answers need no session (the page asks for one when the API refuses it). The
files are served with `Cache-Control: no-cache`, so a browser revalidates them (ETag,
Last-Modified) and never runs the scripts of an older install.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from web.http import ApiError

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_PREFIX = "/static/"
# Only these kinds of file are served; a module script needs a JavaScript type, and
# the nosniff header makes browsers hold every file to its declared type.
CONTENT_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}


def _file_response(path: Path) -> web.FileResponse:
    return web.FileResponse(
        path,
        headers={
            "Content-Type": f"{CONTENT_TYPES[path.suffix]}; charset=utf-8"
            if path.suffix in (".html", ".js", ".css", ".svg")
            else CONTENT_TYPES[path.suffix],
            "Cache-Control": "no-cache",
        },
    )


async def index(request: web.Request) -> web.FileResponse:
    return _file_response(STATIC_DIR / "index.html")


async def static_file(request: web.Request) -> web.FileResponse:
    """A file under web/static/; anything outside it, or of another kind, is a 404."""
    relative = request.match_info["path"]
    path = (STATIC_DIR / relative).resolve()
    if (
        not path.is_relative_to(STATIC_DIR)
        or path.suffix not in CONTENT_TYPES
        or not path.is_file()
    ):
        raise ApiError(404, "no such file", field="path")
    return _file_response(path)
