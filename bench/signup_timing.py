"""Does a sign-up tell, by time, a new address from a known one? Measured in one run.

    python bench/signup_timing.py [PAIRS]

A desk in a temporary folder (SQLite, an aiosmtpd server on loopback), the web app, and
PAIRS (default 50) pairs of sign-ups: one of a new address (a confirmation is mailed) and
one of an active reader's address (nothing is mailed), each followed at once by the next
request on the same worker, GET /subscribe, which is what an attacker times: from the
moment the sign-up's answer is in, through the worker's closing of it, to the end of the
next answer. Printed:
the median time of that next request after each kind and their difference, for the
desk as it is (the request queues the mail; the notices' thread composes and sends it)
and, as the baseline in the same run, with the mail composed and sent where the answer
closes, on the request's worker, as before. The target is a difference under 3 ms.
"""

from __future__ import annotations

import socket
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from flask import Flask

from newsletter.app import Desk, init_desk
from newsletter.delivery.notice_queue import drain
from newsletter.readers.consent import Evidence, current_policy
from newsletter.readers.subscribers import add_active_reader
from newsletter.settings import Settings
from newsletter.web import create_app

ROOT = Path(__file__).resolve().parent.parent
TARGET_MS = 3.0


class Sink:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 OK"


def desk_in(folder: Path, smtp_url: str) -> Desk:
    settings = Settings(
        database_url=f"sqlite:///{folder / 'newsletter.db'}",
        smtp_url=smtp_url,
        outbox=folder / "outbox",
        templates=ROOT / "templates",
        privacy_dir=ROOT / "privacy",
        base_url="https://news.example.org",
        signups_per_hour=1_000_000,
        confirm_mails_per_day=1_000_000,
    )
    desk = Desk(settings)
    init_desk(desk, desk.now())
    desk = desk.use_kept_key()
    with desk.engine.begin() as conn:
        add_active_reader(
            conn,
            "known@example.org",
            "",
            Evidence(source="bench"),
            current_policy(conn),
            desk.now(),
        )
    return desk


def on_the_request_path(app: Flask) -> None:
    """The baseline: the notices composed and sent when the answer closes, on its worker."""
    desk: Desk = app.config["DESK"]

    class Inline:
        def wake(self) -> None:
            drain(desk.engine, desk.settings, desk.transport, desk.now)

        def idle(self, timeout: float | None = None) -> bool:
            return True

    app.config["NOTICES"] = Inline()


def next_request_ms(app: Flask, pairs: int, tag: str) -> tuple[list[float], list[float]]:
    client = app.test_client()
    client.get("/subscribe").close()  # warm: templates compiled, connections open
    after: dict[str, list[float]] = {"new": [], "known": []}
    for i in range(pairs):
        for kind in ("new", "known"):
            address = f"{tag}{i}@example.net" if kind == "new" else "known@example.org"
            form = {"email": address, "consent": "yes", "name": ""}
            answer = client.post("/subscribe", data=form)
            answer.get_data()  # the attacker has the answer; the worker now closes it
            started = time.perf_counter()
            answer.close()  # what the app does after answering runs here, on this worker
            client.get("/subscribe").close()
            after[kind].append((time.perf_counter() - started) * 1000)
            app.config["NOTICES"].idle(30)  # the next pair starts from a quiet worker
    return after["new"], after["known"]


def report(label: str, new: list[float], known: list[float]) -> float:
    difference = statistics.median(new) - statistics.median(known)
    print(
        f"{label:<34} next request after a new address {statistics.median(new):6.2f} ms, "
        f"after a known one {statistics.median(known):6.2f} ms: difference {difference:+6.2f} ms"
    )
    return difference


def main(pairs: int) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Sink(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            desk = desk_in(Path(tmp), f"smtp://127.0.0.1:{port}")
            queued = create_app(replace(desk.settings))
            inline = create_app(replace(desk.settings))
            on_the_request_path(inline)
            print(f"{pairs} pairs of sign-ups, each followed by GET /subscribe on the same worker")
            now = report("notices on their own thread:", *next_request_ms(queued, pairs, "q"))
            before = report(
                "baseline, on the request's worker:", *next_request_ms(inline, pairs, "b")
            )
            print(
                f"difference {abs(now):.2f} ms against {abs(before):.2f} ms for the baseline "
                f"(ratio {abs(before) / max(abs(now), 0.01):.1f}); target under {TARGET_MS:g} ms: "
                f"{'met' if abs(now) < TARGET_MS else 'NOT met'}"
            )
    finally:
        controller.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 50)
