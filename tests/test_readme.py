"""The README, run: every `console` block is typed into bash, in a fresh copy of the
repository's top level, and each command's output (stdout and stderr, as a terminal shows
them) is compared with what the README shows under it.

What may differ is only what must: timings and rates, the folder the session runs in,
signatures and checksums, and the local servers that stand in for the site (the feed at
https://example.org/feed.xml, port 8000, the PostgreSQL database). A line `…` in the README
stands for any number of lines, and a note after two spaces and `#` is the README's
comment, not output. A command with nothing under it is run and must succeed. A
command ending in `&` runs in the background until its block ends, as in a terminal;
its shown lines are the first ones it prints.

Each block runs after the scene its section needs (the demo before "A week at the desk",
a served desk before the API's curl); a block under a heading with no scene fails, so a
new block cannot go unrun.
"""

from __future__ import annotations

import http.server
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pytest
import sqlalchemy as sa

from .conftest import FEEDS, ROOT, free_port, postgres_schema
from .test_bounces import arf, dsn, plain

pytestmark = pytest.mark.slow

README = ROOT / "README.md"
BIN = Path(sys.executable).parent
MONDAY = "2026-11-23T10:00:00+00:00"  # the demo's day: that week's Friday is the 27th
THURSDAY = "2026-12-03T10:00:00+00:00"  # the next week, the day before its send
FRIDAY = "2026-12-04T09:05:00+00:00"  # five minutes after that week's send time
CLONED = ("templates", "privacy", "subscribers", "send.py")  # a fresh clone's top level


@dataclass
class Step:
    command: str
    expected: list[str]
    line: int


@dataclass
class Block:
    line: int
    heading: str
    steps: list[Step]

    @property
    def name(self) -> str:
        return f"{self.heading} (README line {self.line})"


def read_blocks(text: str) -> list[Block]:
    blocks, heading, lines = [], "", text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("#"):
            heading = lines[i].lstrip("#").strip()
        if lines[i].strip() == "```console":
            start, body = i + 1, []
            i += 1
            while lines[i].strip() != "```":
                body.append((i + 1, lines[i]))
                i += 1
            blocks.append(Block(start, heading, read_steps(body)))
        i += 1
    return blocks


def read_steps(body: list[tuple[int, str]]) -> list[Step]:
    steps: list[Step] = []
    j = 0
    while j < len(body):
        number, line = body[j]
        assert line.startswith("$ "), f"README line {number}: output before any command"
        command = line[2:]
        while command.endswith("\\"):  # a command continued on the next line
            j += 1
            command = command[:-1] + " " + body[j][1].strip()
        j += 1
        expected = []
        while j < len(body) and not body[j][1].startswith("$ "):
            expected.append(body[j][1])
            j += 1
        steps.append(Step(command, expected, number))
    return steps


# --- what may differ ----------------------------------------------------------------------

NOTE = re.compile(r"\s{2,}#\s.*$")  # the README's comment after the output
VARIES = [
    (re.compile(r"\d+\.\d\d s, \d+ messages/s"), "N s, N messages/s"),
    (re.compile(r'"messages_per_second": [\d.]+'), '"messages_per_second": N'),
    (re.compile(r"(?<![\w/])/[^\s:]*?/(outbox|issue-2)/"), r"…/\1/"),
    (re.compile(r"\b[0-9a-f]{64}\b"), "<sha256>"),
    (re.compile(r"\(([0-9a-f]{12})…\)"), "(<sha256>…)"),
    (re.compile(r"bounces\+\d+-\d+-[0-9a-f]{12}@"), "bounces+<return path>@"),
    (re.compile(r"(/(?:view/\d+|unsubscribe|confirm|reconsent)/)[\w.=-]+"), r"\1<token>"),
    (re.compile(r"(\d\d:\d\d:\d\d)\.\d{6}"), r"\1.<µs>"),
]


def normalise(line: str) -> str:
    line = line.rstrip()
    for pattern, replacement in VARIES:
        line = pattern.sub(replacement, line)
    return line


def matches(expected: list[str], actual: list[str]) -> bool:
    """`…` in the expected lines matches any run of lines."""
    if not expected:
        return not actual
    if expected[0] == "…":
        return any(matches(expected[1:], actual[k:]) for k in range(len(actual) + 1))
    return bool(actual) and expected[0] == actual[0] and matches(expected[1:], actual[1:])


# --- the session ---------------------------------------------------------------------------


@dataclass
class Session:
    """A fresh clone's top level with the venv's commands on the PATH, nothing configured."""

    root: Path
    env: dict[str, str]
    feed: str  # the site's feed, served on loopback
    replace: dict[str, str] = field(default_factory=dict)  # README text -> this machine's

    def run(self, *commands: str, clock: str = MONDAY) -> str:
        """Commands of a scene, before the block: they must succeed."""
        result = subprocess.run(
            ["bash", "-c", "set -e\n" + "\n".join(commands)], cwd=self.root,
            env=self.env | {"NEWSLETTER_CLOCK": clock}, capture_output=True, text=True,
            timeout=300, check=False,
        )  # fmt: skip
        assert result.returncode == 0, f"{commands}: {result.stdout}{result.stderr}"
        return result.stdout

    def local(self, text: str) -> str:
        for shown, here in self.replace.items():
            text = text.replace(shown, here)
        return text

    def shown(self, text: str) -> str:
        for shown, here in self.replace.items():
            text = text.replace(here, shown)
        return text


# what the README's install lines bring, checked in the test's own environment (a pip
# install here would move the venv's own editable install to the session's copy)
INSTALLS = {"pip install waitress": "waitress", "pip install -e '.[postgres]'": "psycopg"}


def installed(command: str) -> str:
    for line, module in INSTALLS.items():
        if command.startswith(line):
            return f"python -c 'import {module}'"
    assert not command.startswith("pip "), f"no INSTALLS entry for {command!r}"
    return command


def bash_script(steps: list[Step], session: Session) -> str:
    lines = [
        "wait_for() {  # a background command's first $2 lines, once it printed them",
        '  for _ in $(seq 300); do [ "$(wc -l < "$1")" -ge "$2" ] && break; sleep 0.1; done',
        '  head -n "$2" "$1"',
        "}",
        "wait_port() { for _ in $(seq 300); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null"
        " && return; sleep 0.1; done; }",
        "rc=0",
    ]
    for n, step in enumerate(steps):
        command = installed(session.local(step.command))
        lines.append(f"printf '\\n@@step {n}@@\\n'")
        lines.append('(exit "$rc")  # the status of the command before, for `echo $?`')
        if command.rstrip().endswith("&"):
            log = f".background-{n}.log"
            shown = [e for e in step.expected if e.strip()]
            lines.append(f"{command.rstrip()[:-1]} > {log} 2>&1 &")
            lines.append(f"wait_for {log} {len(shown)}")
            port = re.search(r"(?:--port[= ]|127\.0\.0\.1:)(\d+)", command)
            if port:
                lines.append(f"wait_port {port.group(1)}")
            lines.append("rc=0")
        else:
            lines.append(f"{{ {command}\n}} 2>&1")
            lines.append("rc=$?")
        lines.append(f"printf '\\n@@rc {n} %s@@\\n' \"$rc\"")
    lines.append("printf '\\n@@step end@@\\n'")
    lines.append("kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; true")
    return "\n".join(lines) + "\n"


def run_block(block: Block, session: Session, clock: str) -> int:
    """Runs the block; returns how many of its commands showed output that was compared."""
    script = session.root / ".readme-block.sh"
    script.write_text(bash_script(block.steps, session))
    process = subprocess.Popen(
        ["bash", str(script)], cwd=session.root, env=session.env | {"NEWSLETTER_CLOCK": clock},
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        output, _ = process.communicate(timeout=600)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        try:
            os.killpg(process.pid, signal.SIGKILL)  # the block's background commands
        except ProcessLookupError:
            pass
    compared = 0
    parts = re.split(r"\n?@@step (\d+|end)@@\n", output)
    outputs = dict(zip(parts[1::2], parts[2::2], strict=True))
    for n, step in enumerate(block.steps):
        printed, status = re.fullmatch(
            rf"(.*?)\n?@@rc {n} (\d+)@@\n?", outputs[str(n)], re.S
        ).groups()  # type: ignore[union-attr]
        actual = [normalise(session.shown(line)) for line in printed.splitlines()]
        actual = [line for line in actual if line] if step.command.endswith("&") else actual
        expected = [normalise(NOTE.sub("", line)) for line in step.expected]
        if step.command.rstrip().endswith("&"):
            expected = [line for line in expected if line]
        if not expected:
            assert status == "0", f"README line {step.line}: $ {step.command}\n{printed}"
            continue
        compared += 1
        assert matches(expected, actual), (
            f"README line {step.line}: $ {step.command}\n"
            + "expected:\n  " + "\n  ".join(expected)
            + "\ngot:\n  " + "\n  ".join(actual)
        )  # fmt: skip
    return compared


# --- the scenes ------------------------------------------------------------------------------


@pytest.fixture
def session(tmp_path: Path, feed_server: str) -> Session:
    root = tmp_path / "newsletter"
    root.mkdir()
    for name in CLONED:
        origin = ROOT / name
        if origin.is_dir():
            tracked = subprocess.run(["git", "ls-files", name], cwd=ROOT, capture_output=True,
                                     text=True, check=True).stdout.split()  # fmt: skip
            for path in tracked:
                (root / path).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / path, root / path)
        else:
            shutil.copy2(origin, root / name)
    (root / ".venv").symlink_to(sys.prefix)  # the clone's venv, as the README made it
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSLETTER_", "PYTHON"))}
    env |= {
        "PATH": f"{BIN}:{env.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(tmp_path),
        "TMPDIR": str(tmp_path),
        # the site's feed stands on loopback here, which a feed fetch refuses unless told
        "NEWSLETTER_FEED_PRIVATE_HOSTS": "127.0.0.1",
    }
    port = free_port()
    return Session(root, env, feed_server, {"127.0.0.1:8000": f"127.0.0.1:{port}",
                               "newsletter serve": f"newsletter serve --port {port}"})  # fmt: skip


@pytest.fixture
def feed_server() -> Iterator[str]:
    """The site's feed, served on loopback where the README says https://example.org."""
    handler = partial(QuietHandler, directory=str(FEEDS))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/the-weekly-next-week.xml"
    finally:
        server.shutdown()
        server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def nothing(session: Session) -> None:
    pass


def demo(session: Session) -> None:
    session.run("newsletter demo")


def week(session: Session) -> None:
    demo(session)
    session.replace["https://example.org/feed.xml"] = session.feed


def issue_two_approved(session: Session) -> None:
    demo(session)
    session.run(
        "newsletter issue new",
        "newsletter issue pick 2 3 5 8",
        "newsletter issue set 2 --subject 'The week in three stories'",
        "newsletter issue approve 2",
        clock=THURSDAY,
    )


def served(session: Session) -> None:
    demo(session)
    port = session.replace["127.0.0.1:8000"].rsplit(":", 1)[1]
    session.env["NEWSLETTER_BASE_URL"] = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        ["newsletter", "serve", "--port", port], cwd=session.root, env=session.env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip  # ended with the test (conftest)
    session.run(f"for _ in $(seq 300); do (exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null "
                "&& exit 0; sleep 0.1; done; exit 1")  # fmt: skip
    assert server.poll() is None


def bounce_mail(session: Session) -> None:
    """The demo with signed return paths, and five messages back in a Maildir: a DSN and an
    ARF report to two readers' return paths, an out-of-office reply, a DSN to a return path
    with a forged signature, and a reader's question."""
    session.env["NEWSLETTER_BOUNCE_ADDRESS"] = "bounces@example.org"
    demo(session)
    paths = {}
    for message in sorted((session.root / "outbox").glob("*.eml")):
        head = message.read_text().split("\n\n", 1)[0]
        to = re.search(r"^To: .*?<?([\w.]+@[\w.]+)>?$", head, re.M)
        path = re.search(r"^Return-Path: <([^>]+)>", head, re.M)
        assert to and path, head
        paths[to.group(1)] = path.group(1)
    tom, anna = paths["tom.baker@example.org"], paths["anna.petrova@example.org"]
    forged = re.sub(r"-[0-9a-f]{12}@", "-000000000000@", paths["reader@example.net"])
    messages = [
        dsn(tom, "tom.baker@example.org", n=1),
        arf(anna, anna, "anna.petrova@example.org", n=2),
        plain("newsletter@example.org", "Out of office", "Auto-Submitted: auto-replied\n", n=3),
        dsn(forged, "reader@example.net", n=4),
        plain("bounces@example.org", "A question about Friday's issue", n=5),
    ]
    for sub in ("cur", "new", "tmp"):
        (session.root / "Maildir" / sub).mkdir(parents=True, exist_ok=True)
    for number, raw in enumerate(messages):
        (session.root / "Maildir" / "new" / f"{number:04d}.test").write_bytes(raw)


@contextmanager
def postgres(session: Session) -> Iterator[None]:
    """The demo's desk, and an empty schema of the test server where the README names a
    database (skipped, saying why, where no server answers)."""
    schemas = postgres_schema()
    url = sa.make_url(next(schemas))
    try:
        query = url.query
        session.env |= {"PGAPPNAME": str(query["application_name"]),
                        "PGOPTIONS": str(query["options"]).replace("%3D", "=")}  # fmt: skip
        plain = url.difference_update_query(["application_name", "options"])
        session.replace[README_DATABASE] = plain.render_as_string(hide_password=False)
        demo(session)
        yield
    finally:
        schemas.close()  # drops the schema


README_DATABASE = "postgresql+psycopg://postgres@127.0.0.1/newsletter"
SCENES: dict[str, tuple[Callable[[Session], AbstractContextManager[None] | None], str]] = {
    "Newsletter desk": (nothing, MONDAY),
    "A week at the desk": (week, THURSDAY),
    "Every Friday: `send.py`": (issue_two_approved, FRIDAY),
    "Several newsletters": (demo, THURSDAY),
    "Readers and their consent": (demo, THURSDAY),
    "The desk in the browser": (demo, THURSDAY),
    "Readers' pages": (served, THURSDAY),
    "Production serving": (demo, THURSDAY),
    "Sending": (demo, MONDAY),
    "Workers on many hosts, several relays": (issue_two_approved, THURSDAY),
    "Bounces and complaints": (bounce_mail, THURSDAY),
    "Moving to PostgreSQL": (postgres, THURSDAY),
}

BLOCKS = read_blocks(README.read_text())


def test_every_console_block_has_a_scene() -> None:
    assert BLOCKS, "the README has no console block"
    assert [b.name for b in BLOCKS if b.heading not in SCENES] == []


@pytest.mark.parametrize("block", BLOCKS, ids=[b.name for b in BLOCKS])
def test_the_readme_block_does_what_it_shows(block: Block, session: Session) -> None:
    scene, clock = SCENES[block.heading]
    with ExitStack() as stack:
        made = scene(session)
        if made is not None:
            stack.enter_context(made)
        compared = run_block(block, session, clock)
    # every block shows the output of at least one of its commands, and that was compared
    assert compared >= 1, f"{block.name}: no command's output was compared"
