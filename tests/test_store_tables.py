"""Storage: the migrations build exactly the tables the code declares, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from newsletter.store.engine import MIGRATIONS, create_db_engine, upgrade_database
from newsletter.store.tables import metadata

HEAD = sorted(p.name.split("_")[0] for p in (MIGRATIONS / "versions").glob("0*.py"))[-1]


def test_migrations_match_the_declared_tables_and_run_twice(database_url: str) -> None:
    """Replayed one by one, the migrations build what a new database gets at once."""
    engine = create_db_engine(database_url)
    upgrade_database(engine, replay=True)
    upgrade_database(engine)
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
        assert MigrationContext.configure(conn).get_current_revision() == HEAD
    engine.dispose()


def test_a_new_database_is_built_at_once_and_stamped_with_the_newest_migration(
    database_url: str,
) -> None:
    engine = create_db_engine(database_url)
    upgrade_database(engine)
    upgrade_database(engine)  # then an upgrade finds nothing to do
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
        assert MigrationContext.configure(conn).get_current_revision() == HEAD
    engine.dispose()


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path}/a/b/newsletter.db")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    assert (tmp_path / "a" / "b").is_dir()
    engine.dispose()


def test_reserve_takes_at_most_its_batch_in_key_order(database_url: str) -> None:
    from datetime import UTC, datetime

    from newsletter.delivery.ledger import reserve
    from newsletter.store import tables as db

    now = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    engine = create_db_engine(database_url)
    upgrade_database(engine)
    with engine.begin() as conn:
        conn.execute(
            db.issues.insert().values(
                id=1, send_date=now.date(), status="sending", created_at=now, updated_at=now
            )
        )
        db.insert_many(
            conn,
            db.subscribers,
            [
                {
                    "email": f"r{n}@example.org",
                    "name": "",
                    "status": "active",
                    "created_at": now,
                    "updated_at": now,
                    "bounce_count": 0,
                }
                for n in range(3000)
            ],
        )
        ids = (
            conn.execute(sa.select(db.subscribers.c.id).order_by(db.subscribers.c.id))
            .scalars()
            .all()
        )
        db.insert_many(
            conn,
            db.deliveries,
            [{"issue_id": 1, "subscriber_id": i, "status": "pending", "attempts": 0} for i in ids],
        )
    with engine.begin() as conn:
        first = reserve(conn, 1, "worker-a", 100, now)
    with engine.begin() as conn:
        second = reserve(conn, 1, "worker-b", 100, now)
        queued = conn.execute(
            sa.select(sa.func.count()).where(db.deliveries.c.status == "queued")
        ).scalar_one()
    assert [d.subscriber_id for d in first] == list(ids[:100])
    assert [d.subscriber_id for d in second] == list(ids[100:200])
    assert queued == 200
    engine.dispose()
