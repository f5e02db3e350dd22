"""the scheduler's stored jobs name their functions where they live now (schedule.job)

Revision ID: 0010
Revises: 0009

APScheduler keeps each job pickled with a reference to its function as text
("module:function"). The Friday job's module moved from newsletter.scheduling to
newsletter.schedule.job; a stored job that still named the old module could not be
restored, and with it the next run time a missed Friday is found by.
"""

import pickle
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

OLD, NEW = "newsletter.scheduling:", "newsletter.schedule.job:"
jobs = sa.table(
    "scheduler_jobs", sa.column("id", sa.String), sa.column("job_state", sa.LargeBinary)
)


def _rename(before: str, after: str) -> None:
    conn = op.get_bind()
    for job_id, state in conn.execute(sa.select(jobs.c.id, jobs.c.job_state)).all():
        try:
            loaded: Any = pickle.loads(state)
        except Exception:
            continue
        func = loaded.get("func") if isinstance(loaded, dict) else None
        if isinstance(func, str) and func.startswith(before):
            loaded["func"] = after + func[len(before) :]
            renamed = pickle.dumps(loaded, pickle.HIGHEST_PROTOCOL)
            conn.execute(jobs.update().where(jobs.c.id == job_id).values(job_state=renamed))


def upgrade() -> None:
    _rename(OLD, NEW)


def downgrade() -> None:
    _rename(NEW, OLD)
