"""Who is asking: passwords, session tokens, logging in and out, and the middleware that
requires a session on every route but the public ones.

Passwords are hashed with argon2id. A session token is 32 random bytes handed to the
client once; the database keeps only HMAC-SHA256(secret_key, token), so neither a
copy of the sessions table nor the token alone without the secret forges a login.
The token comes as `Authorization: Bearer` or as the session cookie; a state-changing
request authenticated by the cookie must also carry `X-Requested-With` (CSRF).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from datetime import timedelta
from typing import Any

from aiohttp import web
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from schemas.config import WebConfig
from schemas.logs import bind_run
from web.db import store
from web.http import ApiError, Handler
from web.typedefs import CONFIG, DB, PUBLIC_PATHS, SESSIONS, THROTTLE, USER, CurrentUser

_hasher = PasswordHasher()  # argon2id with the library's RFC 9106 low-memory profile
# Verified when the username is unknown, so both failures take the same time.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))

SESSION_COOKIE = "runt_session"
BAD_CREDENTIALS = "invalid username or password"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "X-Requested-With"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_digest(secret_key: str, token: str) -> str:
    return hmac.new(secret_key.encode(), token.encode(), hashlib.sha256).hexdigest()


# ---- logging in and out ----------------------------------------------------------------------


async def log_in(app: web.Application, username: str, password: str) -> dict[str, Any]:
    """A new session for valid credentials: {token, user: {id, username}, expires_at}.
    429 while the username is throttled, 401 for wrong credentials (either part)."""
    cfg, throttle, db = app[CONFIG], app[THROTTLE], app[DB]
    wait = await db.run(throttle.retry_after, username)
    if wait > 0:
        raise web.HTTPTooManyRequests(
            reason="too many failed logins for this username; try again later",
            headers={"Retry-After": str(int(wait) + 1)},
        )
    found = await db.run(store.find_user, username)
    ok = await asyncio.to_thread(verify_password, found[2] if found else None, password)
    if not (found and ok):
        await db.run(throttle.failed, username)
        raise ApiError(401, BAD_CREDENTIALS)
    await db.run(throttle.succeeded, username)
    user_id, name, _ = found
    token = new_token()
    ttl = timedelta(hours=cfg.web.session_ttl_hours)
    expires = await db.run(store.open_session, user_id, token_digest(cfg.secret_key, token), ttl)
    return {"token": token, "user": {"id": user_id, "username": name}, "expires_at": expires}


def set_session_cookie(response: web.Response, token: str, cfg: WebConfig) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(timedelta(hours=cfg.session_ttl_hours).total_seconds()),
        httponly=True,
        samesite="Strict",
        secure=cfg.cookie_secure,
        path="/",
    )


async def log_out(request: web.Request) -> None:
    """End the request's session, in the database and in this process's cache at once."""
    token_hash = request[USER].token_hash
    await request.app[DB].run(store.close_session, token_hash)
    request.app[SESSIONS].forget(token_hash)


def clear_session_cookie(response: web.Response) -> None:
    response.del_cookie(SESSION_COOKIE, path="/")


# ---- every request ---------------------------------------------------------------------------


def _request_token(request: web.Request) -> tuple[str | None, bool]:
    """(token, whether it came from the session cookie)."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip(), False
    return request.cookies.get(SESSION_COOKIE) or None, True


def _check_csrf(request: web.Request) -> None:
    """A browser attaches the session cookie to any request to this site, a forged form
    post from another site included; it sends a custom header only from this site's own
    scripts (another origin would need a CORS preflight, which is never granted). So a
    state-changing request authenticated by the cookie must carry `X-Requested-With`.
    Bearer tokens are never sent by the browser on its own and need no such header."""
    if request.method not in SAFE_METHODS and not request.headers.get(CSRF_HEADER):
        raise ApiError(
            403,
            f"a {request.method} with the session cookie must carry the header "
            f"{CSRF_HEADER} (e.g. `{CSRF_HEADER}: runt`), or authenticate with "
            "`Authorization: Bearer <token>`",
            field=CSRF_HEADER,
        )


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every matched route but the public ones needs a valid session."""
    route = request.match_info.route
    if request.match_info.http_exception is not None or (
        route.resource is not None and route.resource.canonical in request.app[PUBLIC_PATHS]
    ):
        return await handler(request)
    token, from_cookie = _request_token(request)
    if token:
        digest = token_digest(request.app[CONFIG].secret_key, token)
        sessions = request.app[SESSIONS]
        found = sessions.get(digest)
        if found is None:
            found = await request.app[DB].read(store.session_user, digest)
            if found:
                sessions.put(digest, found)
        if found:
            if from_cookie:
                _check_csrf(request)
            request[USER] = CurrentUser(id=found[0], username=found[1], token_hash=digest)
            with bind_run(request.match_info.get("model_id")):
                return await handler(request)
    raise ApiError(401, "authentication required: log in at /login/")
