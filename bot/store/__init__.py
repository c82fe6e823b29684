"""The store (SQLite or PostgreSQL): subscriptions, digest history, feeds, fetched articles."""

from .db import GLOBAL_GUILD, Feed, Post, Store, StoreError, StoreLocked, StoreUnavailable, Subscription, is_postgres_url, redact_url, shard_of
from .reconnect import ReconnectingStore, open_store
from .schedule import Schedule, ScheduleError

__all__ = ["GLOBAL_GUILD", "Feed", "Post", "Schedule", "ScheduleError", "Store", "StoreError", "StoreLocked",
           "StoreUnavailable", "Subscription", "ReconnectingStore", "open_store", "is_postgres_url", "redact_url", "shard_of"]
