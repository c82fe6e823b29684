"""SQLite state: digest subscriptions and what each digest post covered."""

from .db import GLOBAL_GUILD, Feed, Post, Store, StoreError, StoreLocked, Subscription
from .schedule import Schedule, ScheduleError

__all__ = ["GLOBAL_GUILD", "Feed", "Post", "Schedule", "ScheduleError", "Store", "StoreError", "StoreLocked", "Subscription"]
