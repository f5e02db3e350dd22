"""`newsletter worker`: worker processes join a send started elsewhere, against a real SMTP
server in its own process; on PostgreSQL four of them, one killed mid-way."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from newsletter.app import Desk
from newsletter.delivery.ledger import counts
from newsletter.store import tables as db

from .conftest import ROOT, approved_issue
from .test_delivery import Recorder, cli_env, ledger_by_reader, recorders, seed_many, start_recorder

__all__ = ["recorders"]  # the fixture, used by name

pytestmark = pytest.mark.slow  # every test here starts processes


def run(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def start(env: dict[str, str], tmp_path: Path, issue_id: int) -> None:
    started = run(env, tmp_path, "-m", "newsletter", "send", str(issue_id), "--start-only")
    assert started.returncode == 0, started.stderr
    assert "workers send it" in started.stdout


@pytest.mark.parametrize(
    "command", [("-m", "newsletter", "worker"), (str(ROOT / "send.py"), "--worker")]
)
def test_one_worker_on_sqlite_sends_a_send_started_elsewhere(
    desk: Desk, tmp_path: Path, recorders: list[Recorder], command: tuple[str, ...]
) -> None:
    addresses = seed_many(desk.engine, 300)
    issue = approved_issue(desk.engine, picks=2)
    recorder = start_recorder(tmp_path)
    recorders.append(recorder)
    env = cli_env(desk.settings, recorder.url, 3)
    nothing = run(env, tmp_path, *command, "--once")
    assert nothing.returncode == 3 and "no send under way" in nothing.stdout  # nothing to do
    start(env, tmp_path, issue.id)
    assert sum(recorder.recipients().values()) == 0  # starting sends nothing
    worked = run(env, tmp_path, *command, "--once")
    assert worked.returncode == 0, worked.stderr
    assert f"issue {issue.id}: sent" in worked.stdout
    assert recorder.recipients() == {a: 1 for a in addresses}
    assert set(ledger_by_reader(desk.engine, issue.id).values()) == {"sent"}


def test_a_polling_worker_stops_cleanly_on_sigterm(
    desk: Desk, tmp_path: Path, recorders: list[Recorder]
) -> None:
    seed_many(desk.engine, 1000)
    issue = approved_issue(desk.engine, picks=2)
    recorder = start_recorder(tmp_path, delay=0.003)
    recorders.append(recorder)
    env = cli_env(desk.settings, recorder.url, 2) | {"NEWSLETTER_WORKER_POLL": "1s"}
    start(env, tmp_path, issue.id)
    worker = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "worker"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    recorder.wait_for(100, worker)
    worker.send_signal(signal.SIGTERM)
    out, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    assert "stopped on request" in out
    with desk.engine.connect() as conn:
        left = counts(conn, issue.id)
    assert set(left) <= {"sent", "pending"}, left  # nothing reserved or in flight stays
    assert left["sent"] == sum(recorder.recipients().values())
    assert set(recorder.recipients().values()) == {1}


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # SKIP LOCKED
def test_four_workers_on_postgresql_one_killed_mail_everyone_once(
    desk: Desk, tmp_path: Path, recorders: list[Recorder]
) -> None:
    readers, concurrency = 20_000, 3
    addresses = seed_many(desk.engine, readers)
    issue = approved_issue(desk.engine, picks=2)
    recorder = start_recorder(tmp_path)
    recorders.append(recorder)
    env = cli_env(desk.settings, recorder.url, concurrency)
    start(env, tmp_path, issue.id)
    workers: list[subprocess.Popen[str]] = []
    try:
        for _ in range(4):
            workers.append(
                subprocess.Popen(
                    [sys.executable, "-m", "newsletter", "worker", "--once"],
                    cwd=tmp_path,
                    env=env,
                    text=True,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                )
            )
        victim = workers[0]
        recorder.wait_for(readers * 0.25, victim)
        victim.send_signal(signal.SIGKILL)
        victim.communicate(timeout=10)
        for worker in workers[1:]:
            _out, err = worker.communicate(timeout=300)
            assert worker.returncode == 0, err
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.communicate()
    rerun = run(env, tmp_path, "-m", "newsletter", "worker", "--once")
    assert rerun.returncode in (0, 3), rerun.stderr  # 3: the others had left nothing due
    status = run(env, tmp_path, "-m", "newsletter", "status", str(issue.id))

    received, ledger = recorder.recipients(), ledger_by_reader(desk.engine, issue.id)
    uncertain = {a for a, s in ledger.items() if s == "uncertain"}
    assert set(ledger.values()) <= {"sent", "uncertain"}
    assert len(uncertain) <= concurrency  # at most one in flight per connection of the victim
    for address in addresses:
        if address in uncertain:
            assert received[address] <= 1, address
            assert f"uncertain: {address}" in status.stdout
        else:
            assert (ledger[address], received[address]) == ("sent", 1), address
    assert sum(received.values()) == len(received)  # nobody got two copies
    d = db.deliveries
    with desk.engine.connect() as conn:
        by_worker = dict(
            conn.execute(
                sa.select(d.c.worker, sa.func.count())
                .where(d.c.issue_id == issue.id, d.c.status.in_(("sent", "uncertain")))
                .group_by(d.c.worker)
            ).all()
        )
    pids = {int(name.split(":")[1]) for name in by_worker}
    assert {w.pid for w in workers} <= pids  # all four sent, the victim before it died
    assert {int(n.split(":")[1]) for n, _ in _uncertain_workers(desk, issue.id)} <= {victim.pid}
    assert sum(by_worker.values()) == readers


def _uncertain_workers(desk: Desk, issue_id: int) -> list[tuple[str, int]]:
    d = db.deliveries
    with desk.engine.connect() as conn:
        return [
            (row[0], row[1])
            for row in conn.execute(
                sa.select(d.c.worker, d.c.subscriber_id).where(
                    d.c.issue_id == issue_id, d.c.status == "uncertain"
                )
            )
        ]
