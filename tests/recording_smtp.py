"""A real SMTP server (aiosmtpd) in its own process that records every message it accepts.

    python -m tests.recording_smtp PORT LOG [--delay SECONDS] [--rules JSON] [--pipelining]

Each accepted message appends one line "recipient<TAB>message-id" to LOG and flushes it,
so a test can count what the server took even while the sender is killed. Rules make
it misbehave per recipient: {"451": [...], "550": [...], "451-once": [...], "drop-once": [...]
(the connection closed after the body, before the reply), "drop-at-rcpt-once": [...]}.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


class Recorder:
    def __init__(
        self, log: Path, delay: float, rules: dict[str, list[str]], pipelining: bool
    ) -> None:
        self.out = log.open("a", encoding="utf-8")
        self.delay, self.rules = delay, {k: set(v) for k, v in rules.items()}
        self.pipelining = pipelining
        self.lock = threading.Lock()

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:  # fmt: skip
        session.host_name = hostname
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
            self.out.write(f"{recipient}\t{msgid}\n")
            self.out.flush()
        return "250 2.0.0 queued"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("log", type=Path)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--rules", default="{}")
    parser.add_argument("--pipelining", action="store_true")
    args = parser.parse_args()
    recorder = Recorder(args.log, args.delay, json.loads(args.rules), args.pipelining)
    controller = Controller(recorder, hostname="127.0.0.1", port=args.port)
    controller.start()
    print("ready", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    controller.stop()
    sys.exit(0)


if __name__ == "__main__":
    main()
