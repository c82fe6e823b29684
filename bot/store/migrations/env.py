"""Alembic's environment for the store: always run from :class:`bot.store.db.Store`, which passes
the connection (inside its own transaction, under its migration lock) as ``config.attributes["connection"]``."""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=None, transactional_ddl=True,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():  # a no-op: the Store's transaction is already open
    context.run_migrations()
