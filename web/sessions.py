"""What logging in keeps between requests, shared by every request of a web process:
the cache of recently confirmed sessions and the throttle that counts failed logins
(both used by web/auth.py)."""

from __future__ import annotations

import time
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session as DbSession

from web.db.tables import LoginFailure, utcnow


class LoginThrottle:
    """Counts failed logins per username (known or not) in a sliding window.

    Once `max_failures` failures fall in the window, every attempt for that username is
    refused until the oldest of them leaves it, whatever the password. The failures are
    rows of `login_failures`, so every web process (`web.workers`) counts the same ones;
    each method runs in a database transaction (`Database.run`).
    """

    def __init__(self, max_failures: int, window_seconds: float):
        self.max_failures = max_failures
        self.window = timedelta(seconds=window_seconds)

    @staticmethod
    def _key(username: str) -> str:
        return username.strip().lower()[:150]

    def retry_after(self, db: DbSession, username: str) -> float:
        """Seconds until `username` may try again; 0 when it may try now."""
        now = utcnow()
        newest = db.scalars(
            select(LoginFailure.failed_at)
            .where(
                LoginFailure.username_key == self._key(username),
                LoginFailure.failed_at > now - self.window,
            )
            .order_by(LoginFailure.failed_at.desc())
            .limit(self.max_failures)
        ).all()
        if len(newest) < self.max_failures:
            return 0.0
        return max((newest[-1] + self.window - now).total_seconds(), 0.001)

    def failed(self, db: DbSession, username: str) -> None:
        now = utcnow()
        # What has left every window counts for nobody: the table stays small.
        db.execute(delete(LoginFailure).where(LoginFailure.failed_at <= now - self.window))
        db.add(LoginFailure(username_key=self._key(username), failed_at=now))

    def succeeded(self, db: DbSession, username: str) -> None:
        db.execute(delete(LoginFailure).where(LoginFailure.username_key == self._key(username)))


class SessionCache:
    """Sessions confirmed by the database in the last `ttl` seconds, so a client's burst
    of requests costs one session lookup instead of one each.

    A logout through this process forgets its session at once; one through another web
    process, or a session's expiry, takes effect here within `ttl` seconds.
    """

    def __init__(self, ttl: float = 2.0, max_entries: int = 10_000):
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, tuple[int, str]]] = {}

    def get(self, digest: str, now: float | None = None) -> tuple[int, str] | None:
        now = time.monotonic() if now is None else now
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if entry[0] <= now:
            del self._entries[digest]
            return None
        return entry[1]

    def put(self, digest: str, user: tuple[int, str], now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if len(self._entries) >= self.max_entries:
            self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
            while len(self._entries) >= self.max_entries:  # still full: drop the oldest
                self._entries.pop(next(iter(self._entries)))
        self._entries[digest] = (now + self.ttl, user)

    def forget(self, digest: str) -> None:
        self._entries.pop(digest, None)
