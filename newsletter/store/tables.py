"""The tables, declared once for SQLite and PostgreSQL, and a bulk insert for them."""

from __future__ import annotations

from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

metadata = sa.MetaData()

FIRST_NEWSLETTER = 1  # the one every desk has: made with the database, or by migration 0017


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on every database."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware UTC time")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


articles = sa.Table(
    "articles",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("url", sa.String(2000), nullable=False, unique=True),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("summary", sa.Text, nullable=False, server_default=""),
    sa.Column("section", sa.String(200), nullable=False, server_default=""),
    sa.Column("author", sa.String(300), nullable=False, server_default=""),
    sa.Column("published_at", UTCDateTime, nullable=True),
    sa.Column("image_url", sa.String(2000), nullable=True),
    sa.Column("image_alt", sa.Text, nullable=False, server_default=""),
    sa.Column("image_width", sa.Integer, nullable=True),  # pixels, when the feed or a
    sa.Column("image_height", sa.Integer, nullable=True),  # look at the image told
    sa.Column("source", sa.String(2000), nullable=False, server_default="hand"),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

# A newsletter of the desk: each has its readers, issues and schedule. An unset value
# follows the desk's setting (NEWSLETTER_SITE_NAME, _FROM, _LIST_ID, _SEND_AT in
# _TIMEZONE, _TEMPLATES), so a desk with one newsletter is configured as before.
newsletters = sa.Table(
    "newsletters",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("slug", sa.String(40), nullable=False, unique=True),
    sa.Column("name", sa.String(300), nullable=True),
    sa.Column("from_addr", sa.String(400), nullable=True),
    sa.Column("list_id", sa.String(200), nullable=True),
    sa.Column(
        "schedule", sa.String(100), nullable=True
    ),  # "fri 09:00 Europe/Moscow", "daily 07:00"
    sa.Column("templates", sa.String(1000), nullable=True),
    sa.Column("appeal", sa.Boolean, nullable=False, server_default=sa.true()),  # new issues'
    sa.Column("wording", sa.Text, nullable=True),  # the sign-up's consent words; unset: the desk's
    sa.Column("created_at", UTCDateTime, nullable=False),
)

issues = sa.Table(
    "issues",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "newsletter_id",
        sa.ForeignKey("newsletters.id", name="fk_issues_newsletter_id_newsletters"),
        nullable=False,
        server_default=str(FIRST_NEWSLETTER),
    ),
    sa.Column("send_date", sa.Date, nullable=False),
    sa.Column("status", sa.String(20), nullable=False, server_default="draft"),
    sa.Column("subject", sa.Text, nullable=False, server_default=""),
    sa.Column("preheader", sa.Text, nullable=False, server_default=""),
    sa.Column("note", sa.Text, nullable=False, server_default=""),
    sa.Column("appeal", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("by_section", sa.Boolean, nullable=False, server_default=sa.false()),
    # approved although Gmail would clip it: the editor's --force, which the send honours
    sa.Column("clip_forced", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("approved_at", UTCDateTime, nullable=True),
    sa.Column("sent_at", UTCDateTime, nullable=True),
    # one more on every change: a save from a page that showed an older one is refused
    sa.Column("revision", sa.Integer, nullable=False, server_default="1"),
    # shown in the public archive once sent, unless its editors keep it out
    sa.Column("in_archive", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.UniqueConstraint("newsletter_id", "send_date", name="uq_issues_newsletter_day"),
)

issue_items = sa.Table(
    "issue_items",
    metadata,
    sa.Column("issue_id", sa.ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("article_id", sa.ForeignKey("articles.id"), primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("title", sa.Text, nullable=True),
    sa.Column("summary", sa.Text, nullable=True),
    sa.Column("image_alt", sa.Text, nullable=True),  # the editor's, over the article's
)

# An item taken out of an issue, with the text written for it there: added back (or the
# removal undone) it returns with that text, at its place.
removed_items = sa.Table(
    "removed_items",
    metadata,
    sa.Column("issue_id", sa.ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("article_id", sa.ForeignKey("articles.id"), primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("title", sa.Text, nullable=True),
    sa.Column("summary", sa.Text, nullable=True),
    sa.Column("image_alt", sa.Text, nullable=True),
)

policy_versions = sa.Table(
    "policy_versions",
    metadata,
    sa.Column("version", sa.String(100), primary_key=True),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("wording", sa.Text, nullable=False),
    sa.Column("published_at", UTCDateTime, nullable=False),
)

# One address's subscription to one newsletter: its status, consent events, confirmation
# and unsubscribe link are that newsletter's; suppression and bounces are the address's.
subscribers = sa.Table(
    "subscribers",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "newsletter_id",
        sa.ForeignKey("newsletters.id", name="fk_subscribers_newsletter_id_newsletters"),
        nullable=False,
        server_default=str(FIRST_NEWSLETTER),
    ),
    sa.Column("email", sa.String(320), nullable=True),
    sa.Column("name", sa.String(300), nullable=False, server_default=""),
    sa.Column("status", sa.String(20), nullable=False, server_default="pending"),
    sa.Column("policy_version", sa.ForeignKey("policy_versions.version"), nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("bounce_count", sa.Integer, nullable=False, server_default="0"),
    # the name a sign-up offered, kept apart until its confirmation: a stranger who signs
    # up someone's address does not choose the words that greet them
    sa.Column("offered_name", sa.String(300), nullable=True),
    sa.Index("ix_subscribers_status", "status"),
    sa.Index("ix_subscribers_email", "email"),
    sa.UniqueConstraint("newsletter_id", "email", name="uq_subscribers_newsletter_email"),
)

consent_events = sa.Table(
    "consent_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("subscriber_id", sa.ForeignKey("subscribers.id"), nullable=False, index=True),
    sa.Column("kind", sa.String(30), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("ip", sa.String(64), nullable=True),
    sa.Column("user_agent", sa.Text, nullable=True),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("policy_version", sa.String(100), nullable=True),
    sa.Column("policy_sha256", sa.String(64), nullable=True),
    sa.Column("wording", sa.Text, nullable=True),
    sa.Column("detail", sa.Text, nullable=True),
)

suppressions = sa.Table(
    "suppressions",
    metadata,
    sa.Column("address_hash", sa.String(64), primary_key=True),
    sa.Column("reason", sa.String(30), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
)

signup_attempts = sa.Table(
    "signup_attempts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("address_hash", sa.String(64), nullable=False),
    sa.Column("ip_hash", sa.String(64), nullable=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("mailed", sa.Boolean, nullable=False),
    sa.Index("ix_signup_attempts_address", "address_hash", "at"),
    sa.Index("ix_signup_attempts_ip", "ip_hash", "at"),
)

desk_keys = sa.Table(
    "desk_keys",
    metadata,
    sa.Column("name", sa.String(50), primary_key=True),
    sa.Column("value", sa.String(200), nullable=False),
)

# The secret key that signs readers' links (made by `init`, unless the environment sets one);
# a rotated key stays to verify links until `verify_until`.
signing_keys = sa.Table(
    "signing_keys",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("value", sa.String(200), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("retired_at", UTCDateTime, nullable=True),
    sa.Column("verify_until", UTCDateTime, nullable=True),
)

# Notices (confirmation, welcome) the web app owes: queued by the request's transaction,
# composed and sent by a thread of their own, or by `newsletter worker`.
notice_queue = sa.Table(
    "notice_queue",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("subscriber_id", sa.ForeignKey("subscribers.id"), nullable=False),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("name", sa.String(300), nullable=False, server_default=""),
    sa.Column("token", sa.Text, nullable=False, server_default=""),
    sa.Column("queued_at", UTCDateTime, nullable=False),
    sa.Column("next_try_at", UTCDateTime, nullable=False, index=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("claimed_until", UTCDateTime, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
)

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("issue_id", sa.ForeignKey("issues.id"), primary_key=True),
    sa.Column("subscriber_id", sa.ForeignKey("subscribers.id"), primary_key=True),
    sa.Column("status", sa.String(20), nullable=False, server_default="pending"),
    sa.Column("message_id", sa.String(300), nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("worker", sa.String(100), nullable=True),
    sa.Column("lease_until", UTCDateTime, nullable=True),
    sa.Column("next_attempt_at", UTCDateTime, nullable=True),
    sa.Column("reply", sa.Text, nullable=True),
    sa.Column("reason", sa.String(20), nullable=True),  # a refusal's, newsletter.reasons
    sa.Column("updated_at", UTCDateTime, nullable=True),
    # what bounce mail said later: soft, hard or complaint (the worst heard), and its words
    sa.Column("outcome", sa.String(20), nullable=True),
    sa.Column("outcome_detail", sa.Text, nullable=True),
    sa.Column("outcome_at", UTCDateTime, nullable=True),
    sa.Column("outcome_reason", sa.String(20), nullable=True),  # newsletter.reasons' word
    # in key order within a status: taking the next batch of pending rows reads that batch only
    sa.Index("ix_deliveries_issue_status_reader", "issue_id", "status", "subscriber_id"),
)

# The scheduler's own table (APScheduler's SQLAlchemyJobStore), declared here so the
# migrations own every table of the desk; the job store finds it and uses it.
scheduler_jobs = sa.Table(
    "scheduler_jobs",
    metadata,
    sa.Column("id", sa.Unicode(191), primary_key=True),
    sa.Column("next_run_time", sa.Float(25), index=True),
    sa.Column("job_state", sa.LargeBinary, nullable=False),
)

# Who may send now: one row per lease name, taken over only once it has expired.
leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.String(50), primary_key=True),
    sa.Column("holder", sa.String(200), nullable=False),
    sa.Column("acquired_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
)

# Alerts mailed to the editors, one per kind and send day however often a job runs.
alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("kind", sa.String(30), nullable=False),
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("sent_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("kind", "day", name="uq_alerts_kind_day"),
)

# Every message bounce processing has read, so reading it again changes nothing; soft
# bounces are counted here over a window of days.
bounce_mail = sa.Table(
    "bounce_mail",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("received_at", UTCDateTime, nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("issue_id", sa.Integer, nullable=True),
    sa.Column("subscriber_id", sa.Integer, nullable=True),
    sa.Column("code", sa.String(20), nullable=True),
    sa.Column("diagnostic", sa.Text, nullable=False, server_default=""),
    sa.Column("source", sa.Text, nullable=False, server_default=""),
    sa.Column("reason", sa.String(20), nullable=True),  # newsletter.reasons' word
    sa.Index("ix_bounce_mail_reader", "subscriber_id", "kind", "received_at"),
)

# Desk accounts; failed logins are kept so every web process slows the same guesser.
editors = sa.Table(
    "editors",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("email", sa.String(320), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(300), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("last_login_at", UTCDateTime, nullable=True),
    # editor: curates and approves; admin: also the readers' data and the editors
    sa.Column("role", sa.String(20), nullable=False, server_default="editor"),
)

desk_sessions = sa.Table(  # an editor's signed-in browser: the cookie's token, hashed
    "desk_sessions",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("editor_id", sa.ForeignKey("editors.id"), nullable=False, index=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
)

login_failures = sa.Table(
    "login_failures",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("ip", sa.String(64), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Index("ix_login_failures_email", "email", "at"),
    sa.Index("ix_login_failures_ip", "ip", "at"),
)


def insert_many(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """executemany straight to the driver, for bulk paths: SQLAlchemy's per-row parameter
    handling costs more than SQLite's insert itself. Column types still convert values;
    the rows are changed in place (converted) and all have the first row's keys."""
    if not rows:
        return
    compiled = table.insert().compile(dialect=conn.dialect, column_keys=list(rows[0]))
    names = list(compiled.positiontup or []) if conn.dialect.positional else list(compiled.params)
    for column in table.columns:
        convert = column.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
        if convert is not None and column.name in names:
            for row in rows:
                row[column.name] = convert(row[column.name])
    if conn.dialect.positional:
        take = itemgetter(*names)
        conn.exec_driver_sql(str(compiled), [take(row) for row in rows])
    else:
        conn.exec_driver_sql(str(compiled), [{n: row[n] for n in names} for row in rows])
