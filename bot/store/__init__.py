"""SQLite state: digest subscriptions and what each digest post covered."""

from .db import Post, Store, StoreError, StoreLocked, Subscription
from .schedule import Schedule, ScheduleError

__all__ = ["Post", "Schedule", "ScheduleError", "Store", "StoreError", "StoreLocked", "Subscription"]
