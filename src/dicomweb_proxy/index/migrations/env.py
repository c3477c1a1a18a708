"""Alembic environment for the index: runs on the connection upgrade_schema() hands over.

There is no alembic.ini: dicomweb_proxy.index.database configures Alembic in code.
"""

from alembic import context

from dicomweb_proxy.index.schema import metadata

context.configure(connection=context.config.attributes["connection"], target_metadata=metadata)
with context.begin_transaction():
    context.run_migrations()
