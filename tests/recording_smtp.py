"""A real SMTP server (aiosmtpd) in its own process that records every message it accepts.

    python -m tests.recording_smtp PORT LOG [--delay SECONDS] [--rules JSON] [--pipelining]
                                   [--sessions LOG]

Each accepted message appends one line "recipient<TAB>message-id" to LOG and flushes it,
so a test can count what the server took even while the sender is killed. Rules make
it misbehave per recipient: {"451": [...], "550": [...], "451-once": [...], "drop-once": [...]
(the connection closed after the body, before the reply), "drop-at-rcpt-once": [...],
"421-after": N (once N messages are taken the server stops listening, so new connections
are refused, and answers 421 at the next RCPT of each open one, closing it)}.
With --sessions, each EHLO appends one line to that file: a count of connections.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


class Recorder:
    def __init__(
        self,
        log: Path,
        delay: float,
        rules: dict[str, Any],
        pipelining: bool,
        sessions: Path | None = None,
    ) -> None:
        self.out = log.open("a", encoding="utf-8")
        self.closing_after: int | None = rules.pop("421-after", None)
        self.delay, self.rules = delay, {k: set(v) for k, v in rules.items()}
        self.pipelining = pipelining
        self.sessions = sessions.open("a", encoding="utf-8") if sessions else None
        self.taken = 0
        self.stop_listening: Any = None  # set once the server runs
        self.lock = threading.Lock()

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:  # fmt: skip
        session.host_name = hostname
        if self.sessions is not None:
            with self.lock:
                self.sessions.write(f"{hostname}\n")
                self.sessions.flush()
        offered = ["250-PIPELINING"] if self.pipelining else []  # RFC 2920, as relays offer it
        return [responses[0], *offered, *responses[1:]]  # the first line is the greeting

    def _once(self, rule: str, address: str) -> bool:
        with self.lock:
            if address in self.rules.get(rule, set()):
                self.rules[rule].discard(address)
                return True
        return False

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          options: Any) -> str:  # fmt: skip
        if self.closing_after is not None and self.taken >= self.closing_after:
            server.transport.close()  # before DATA: nothing was handed over
            return "421 4.3.2 shutting down"
        if self._once("drop-at-rcpt-once", address):
            server.transport.close()  # before DATA: nothing was handed over
            return "421 closing"
        if address in self.rules.get("550", ()):
            return f"550 5.1.1 <{address}>: recipient unknown"
        if address in self.rules.get("451", ()) or self._once("451-once", address):
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.delay:
            import asyncio

            await asyncio.sleep(self.delay)
        [recipient] = envelope.rcpt_tos
        if self._once("drop-once", recipient):
            server.transport.close()  # mid-DATA: the body arrived, no reply ever goes out
            return "421 closing"
        found = re.search(rb"^Message-ID: (\S+)", envelope.original_content, re.M)
        msgid = found.group(1).decode() if found else "-"
        with self.lock:
            taken = time.time()  # clock: the server's receipt time; only spans are compared
            self.out.write(f"{recipient}\t{msgid}\t{taken:.6f}\n")
            self.out.flush()
            self.taken += 1
            if self.closing_after is not None and self.taken == self.closing_after:
                self.stop_listening()
        return "250 2.0.0 queued"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("log", type=Path)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--rules", default="{}")
    parser.add_argument("--pipelining", action="store_true")
    parser.add_argument("--sessions", type=Path)
    args = parser.parse_args()
    rules = json.loads(args.rules)
    recorder = Recorder(args.log, args.delay, rules, args.pipelining, args.sessions)
    controller = Controller(recorder, hostname="127.0.0.1", port=args.port)
    controller.start()
    recorder.stop_listening = lambda: controller.server.close()  # runs in the server's loop
    print("ready", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    controller.stop()
    sys.exit(0)


if __name__ == "__main__":
    main()
