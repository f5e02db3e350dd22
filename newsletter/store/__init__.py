"""The store, at the bottom: the tables, the engine and Alembic's migrations, the signing
keys kept in the database, and the copy from one database to another.

Imports nothing of the desk's but the foundation (errors, models, settings).
"""
