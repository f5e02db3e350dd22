"""The command line as an editor uses it, in an empty folder with nothing configured."""

from __future__ import annotations

import email
import json
import subprocess
import sys
from email.policy import default
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from newsletter.cli import cli

from .conftest import FEEDS, ROOT, SECRET


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty folder where a site installed the package."""
    monkeypatch.chdir(tmp_path)
    for name in list(__import__("os").environ):
        if name.startswith("NEWSLETTER_"):
            monkeypatch.delenv(name)
    return tmp_path


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def ok(*args: str, env: dict[str, str] | None = None) -> Result:
    result = run(*args, env=env)
    assert result.exit_code == 0, result.output
    return result


def as_json(*args: str, env: dict[str, str] | None = None):
    return json.loads(ok(*args, "--json", env=env).stdout)


def test_init_lays_out_a_working_folder_and_is_harmless_twice(site: Path) -> None:
    first = ok("init")
    assert "created templates/" in first.output and "privacy policy 2026-11-01" in first.output
    for path in ("templates/issue.html", "templates/style.css", "privacy/wording.txt",
                 "subscribers/README.md", "subscribers/newsletter.db"):  # fmt: skip
        assert (site / path).is_file(), path
    (site / "templates" / "issue.html").write_text("customised")
    second = ok("init")
    assert "created" not in second.output
    assert (site / "templates" / "issue.html").read_text() == "customised"


def test_demo_in_an_empty_folder_sends_to_the_outbox(site: Path) -> None:
    result = ok("demo")
    assert "sent now 3" in result.output
    files = sorted((site / "outbox").glob("*.eml"))
    assert len(files) == 3
    message = email.message_from_bytes(files[0].read_bytes(), policy=default)
    assert message["List-Unsubscribe"] and message.get_body(("html",)) is not None
    again = ok("demo")
    assert "sent now 0, sent before 3" in again.output or "nothing new" in again.output
    assert len(list((site / "outbox").glob("*.eml"))) == 3


def test_a_week_at_the_desk(site: Path) -> None:
    env = {"NEWSLETTER_SECRET_KEY": SECRET}
    ok("init")
    ok("subscribers", "import", str(ROOT / "subscribers" / "readers.csv"))  # two of them active
    [report] = as_json("articles", "import", str(FEEDS / "liga-ru-2021.xml"))
    assert report["added"] == 12
    issue = as_json("issue", "new", "--date", "2026-11-23")
    assert issue["send_date"] == "2026-11-27" and issue["status"] == "draft"
    listed = as_json("articles", "list", "--limit", "3")
    ids = [str(a["id"]) for a in listed]
    ok("issue", "pick", "2026-11-27", *ids)
    moved = as_json("issue", "move", "2026-11-27", ids[2], "1")
    assert [i["article_id"] for i in moved["items"]] == [int(ids[2]), int(ids[0]), int(ids[1])]
    note = site / "note.md"
    note.write_text("Первый абзац.\n\nВторой абзац.")
    ok("issue", "set", "2026-11-27", "--subject", "Неделя", "--preheader", "Пять историй недели",
       "--note-file", str(note), "--no-appeal")  # fmt: skip
    ok("issue", "set", "2026-11-27", "--item", ids[0], "--title", "Короче", "--alt", "Стадион")
    ok("issue", "set", "2026-11-27", "--by-section")
    shown = as_json("issue", "show", "2026-11-27")
    assert shown["appeal"] is False and shown["items"][1]["title"] == "Короче"
    assert shown["items"][1]["alt_override"] == "Стадион" and shown["by_section"] is True
    ok("issue", "set", "2026-11-27", "--in-order")
    out = site / "rendered"
    ok("render", "2026-11-27", "--out", str(out), env=env)
    assert {p.name for p in out.iterdir()} == {
        "issue.html", "issue.txt", "issue.eml", "preflight.json"
    }  # fmt: skip
    assert "Короче" in (out / "issue.html").read_text()
    assert "Второй абзац." in (out / "issue.txt").read_text()
    assert as_json("issue", "approve", "2026-11-27")["status"] == "approved"
    sent = as_json("send", "2026-11-27", env=env)
    assert sent["audience"] == 2 and sent["status"] == "sent"
    status = as_json("status", str(issue["id"]))
    assert status["status"] == "sent"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("issue", "show", "7"), 3, "Error: no issue 7"),
        (("issue", "approve", "2026-11-27"), 4, "is empty: pick articles before approving it"),
        (("articles", "import", "missing.xml"), 2, "missing.xml"),
        (("articles", "add", "ftp://x", "--title", "T"), 2, "url: must be an http(s) address"),
        (("issue", "new", "--date", "27.11.2026"), 2, "Invalid value for '--date'"),
        (("issue", "set", "2026-11-27", "--subject", "a\nb"), 2, "subject: must be one line"),
        (("send", "2026-11-27"), 4, "fails preflight: the subject is empty"),
    ],
)
def test_errors_are_one_line_on_stderr_with_an_exit_code(
    site: Path, args: tuple[str, ...], code: int, message: str
) -> None:
    ok("init")
    ok("issue", "new", "--date", "2026-11-27")
    result = run(*args)
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert message in lines[-1]
    if not lines[0].startswith("Usage:"):  # click's own usage errors also show the usage
        assert len(lines) == 1
    assert "Traceback" not in result.output


def test_a_malformed_setting_stops_the_command_naming_it(site: Path) -> None:
    result = run("init", env={"NEWSLETTER_TIMEZONE": "Nowhere/Town"})
    assert result.exit_code == 2
    assert "NEWSLETTER_TIMEZONE: unknown IANA time zone 'Nowhere/Town'" in result.stderr


def test_every_command_has_help_with_an_example(site: Path) -> None:
    def walk(group, path):
        for name, command in group.commands.items():
            if hasattr(command, "commands"):
                yield from walk(command, [*path, name])
            else:
                yield [*path, name]

    for path in walk(cli, []):
        result = ok(*path, "--help")
        assert "Example:" in result.output, path


@pytest.mark.slow
def test_an_approval_is_stored_even_when_nobody_reads_its_output(site: Path) -> None:
    """`newsletter issue approve 3 | head -1` approves: the answer is printed after the commit."""
    import os
    import subprocess
    import sys

    ok("init")
    ok("articles", "import", str(FEEDS / "liga-ru-2021.xml"))
    ok("issue", "new")
    ok("issue", "pick", "1", "1", "2")
    ok("issue", "set", "1", "--subject", "The week")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "issue", "approve", "1"],
        cwd=site, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    assert process.stdout is not None
    process.stdout.close()  # the reader of the pipe is gone before the command answers
    process.wait(timeout=60)
    assert "approved" in ok("issue", "list").output


def test_each_commands_line_in_the_help_is_its_own_and_the_help_imports_none_of_them() -> None:
    """`newsletter --help` shows the lines kept beside the command names without importing
    a command; each line is the command's own first line, so they cannot drift apart."""
    from newsletter.cli import COMMANDS, LazyGroup

    group = cli
    assert isinstance(group, LazyGroup)
    for name, (_, _, line) in COMMANDS.items():
        command = group.get_command(click.Context(group), name)
        assert command is not None and command.name == name
        assert command.get_short_help_str(1000) == line, name
    probe = (
        "import sys\n"
        "from newsletter.cli import cli\n"
        "try:\n"
        "    cli.main(['--help'], prog_name='newsletter')\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('sqlalchemy', 'premailer', 'feedparser', 'alembic', 'flask', 'jinja2')\n"
        "print(sorted(m for m in sys.modules if m.startswith('newsletter.cli.')\n"
        "             or m.split('.')[0] in heavy))\n"
    )
    shown = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                           check=True).stdout.splitlines()  # fmt: skip
    assert "  worker       Join every send under way" in "\n".join(shown)
    assert shown[-1] == "['newsletter.cli.common']"


def test_an_issue_gmail_would_clip_is_approved_only_when_forced(site: Path) -> None:
    ok("init")
    ok("issue", "new", "--date", "2026-11-27")
    long = "Очень длинный текст о бюджете города, трамваях и библиотеках. " * 300
    for n in range(6):
        ok(
            "articles",
            "add",
            f"https://example.org/{n}",
            "--title",
            f"История {n}",
            "--summary",
            long,
        )
    ok("issue", "pick", "2026-11-27", *(str(n) for n in range(1, 7)))
    ok(
        "issue",
        "set",
        "2026-11-27",
        "--subject",
        "Неделя",
        "--preheader",
        "Шесть длинных историй недели",
    )
    refused = run("issue", "approve", "2026-11-27")
    assert refused.exit_code == 4
    assert "Gmail clips messages above 104,448" in refused.stderr
    assert "issue approve --force" in refused.stderr and "it stays a draft" in refused.stderr
    assert as_json("issue", "show", "2026-11-27")["status"] == "draft"
    forced = as_json("issue", "approve", "2026-11-27", "--force")
    assert forced["status"] == "approved" and forced["clip_forced"] is True
    assert as_json("issue", "unapprove", "2026-11-27")["clip_forced"] is False
