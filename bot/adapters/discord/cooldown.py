"""A per-user cooldown for the commands that run a model."""

from __future__ import annotations

import time


class Cooldowns:
    def __init__(self, seconds: float, *, clock=time.monotonic, max_users: int = 10_000) -> None:
        self.seconds = float(seconds)
        self._clock = clock
        self._last: dict[int, float] = {}
        self._max_users = max_users

    def hit(self, user_id: int) -> float:
        """0.0 and the user's clock restarts, or the seconds left to wait (the clock is not restarted)."""
        if self.seconds <= 0:
            return 0.0
        now = self._clock()
        last = self._last.get(user_id)
        if last is not None and now - last < self.seconds:
            return self.seconds - (now - last)
        if len(self._last) >= self._max_users:  # forget the expired ones
            self._last = {u: t for u, t in self._last.items() if now - t < self.seconds}
        self._last[user_id] = now
        return 0.0
