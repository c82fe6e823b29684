"""One cog per feature; the logic they call lives outside Discord (handlers, engines, store)."""
