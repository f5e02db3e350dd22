"""`bounces process` against a real IMAP server on loopback: Debian's dovecot-imapd, started
here with a throwaway configuration in the test's folder."""

from __future__ import annotations

import imaplib
import os
import pwd
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.app import Desk
from newsletter.cli import cli
from newsletter.compose.returnpath import return_paths
from newsletter.settings import Settings

from .conftest import SECRET, free_port, seed_readers
from .test_bounces import BOUNCE_ADDRESS, dsn, plain, reader

DOVECOT = Path("/usr/sbin/dovecot")

CONFIG = """\
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
default_login_user = dovenull
# the password file lies in the test's folder, private to root: auth reads it as root
default_internal_user = root
default_internal_group = root
mail_location = maildir:~/Maildir
# mail is never read as root: the mail process chroots into the test's folder, then runs
# as nobody, so the folders above it (private to root) need not be opened to anyone
valid_chroot_dirs = {root}/mail
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {root}/passwd
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={root}/mail/./%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""

pytestmark = pytest.mark.slow  # every test here starts processes


def _why_not() -> str | None:
    if not DOVECOT.exists():
        return "needs /usr/sbin/dovecot (apt-get install dovecot-imapd; .ci/run does as root)"
    if os.geteuid() != 0:
        return "dovecot's test configuration runs as root (it chroots the mail process)"
    for user in ("dovenull", "nobody"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            return f"needs the system user {user} (made by the dovecot-core package)"
    return None


@contextmanager
def dovecot(tmp_path: Path, extra: str = "") -> Iterator[str]:
    """A dovecot on loopback with one account; its URL. `extra`: more configuration."""
    why = _why_not()
    if why:
        pytest.skip(why)
    root = tmp_path / "dovecot"
    (root / "mail" / "bounces").mkdir(parents=True)
    shutil.chown(root / "mail", "nobody", "nogroup")
    shutil.chown(root / "mail" / "bounces", "nobody", "nogroup")
    (root / "passwd").write_text("bounces:{PLAIN}s3cret\n")
    port = free_port()
    (root / "dovecot.conf").write_text(CONFIG.format(root=root, port=port) + extra)
    server = subprocess.Popen([str(DOVECOT), "-c", str(root / "dovecot.conf"), "-F"])
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                imaplib.IMAP4("127.0.0.1", port, timeout=2).logout()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    log = root / "dovecot.log"
                    raise RuntimeError(
                        log.read_text() if log.exists() else "dovecot died"
                    ) from None
                time.sleep(0.1)
        yield f"imap://bounces:s3cret@127.0.0.1:{port}/INBOX"
    finally:
        server.terminate()
        server.wait(timeout=15)


@pytest.fixture
def imap_url(tmp_path: Path) -> Iterator[str]:
    with dovecot(tmp_path) as url:
        yield url


def _imap(url: str) -> imaplib.IMAP4:
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    imap = imaplib.IMAP4("127.0.0.1", port, timeout=10)
    imap.login("bounces", "s3cret")
    return imap


def _count(imap: imaplib.IMAP4, folder: str) -> int:
    status, data = imap.select(folder, readonly=True)
    return int(data[0] or 0) if status == "OK" else -1


def test_imap_bounces_are_processed_and_moved_never_deleted(
    settings: Settings, desk: Desk, imap_url: str
) -> None:
    bdesk = Desk(replace(settings, bounce_address=BOUNCE_ADDRESS))
    anna, tom, _ = seed_readers(bdesk.engine)
    path = return_paths(SECRET, BOUNCE_ADDRESS, 1, "")
    imap = _imap(imap_url)
    for raw in (
        dsn(path(anna), "anna@example.org"),
        plain(path(tom), "Out of Office", "Auto-Submitted: auto-replied\n", 2),
        plain(BOUNCE_ADDRESS, "A letter to the editor", n=3),
    ):
        imap.append("INBOX", None, None, raw.replace(b"\n", b"\r\n"))
    result = CliRunner().invoke(cli, ["bounces", "process", imap_url], obj=bdesk)
    assert result.exit_code == 0, result.output
    assert "read 3 messages: autoreply 1, hard 1, unrecognised 1" in result.output
    assert "s3cret" not in result.output
    assert reader(bdesk.engine, anna).status == "bounced"
    assert reader(bdesk.engine, tom).status == "active"
    counts = {f: _count(imap, f) for f in ("INBOX", "Processed", "Unrecognised")}
    assert counts == {"INBOX": 0, "Processed": 2, "Unrecognised": 1}
    again = CliRunner().invoke(cli, ["bounces", "process", imap_url], obj=bdesk)
    assert "read 0 messages: nothing" in again.output
    imap.logout()


def test_a_message_the_server_will_not_move_is_recorded_and_listed_as_left(
    settings: Settings, desk: Desk, imap_url: str, tmp_path: Path
) -> None:
    bdesk = Desk(replace(settings, bounce_address=BOUNCE_ADDRESS))
    anna, _, _ = seed_readers(bdesk.engine)
    imap = _imap(imap_url)
    imap.append("INBOX", None, None, dsn(return_paths(SECRET, BOUNCE_ADDRESS, 1, "")(anna),
                                         "anna@example.org").replace(b"\n", b"\r\n"))  # fmt: skip
    imap.append("INBOX", None, None, plain(BOUNCE_ADDRESS, "A letter", n=3).replace(b"\n", b"\r\n"))
    # a file (root's) where the Processed folder would go: the server cannot make it
    (tmp_path / "dovecot" / "mail" / "bounces" / "Maildir" / ".Processed").write_text("")

    result = CliRunner().invoke(cli, ["bounces", "process", imap_url], obj=bdesk)

    assert result.exit_code == 2, result.output
    assert "read 2 messages: hard 1, unrecognised 1" in result.output
    assert re.search(r"left in place: imap://bounces:\*\*\*@\S+: message \d+ not moved to "
                     r"Processed: \S", result.output), result.output  # fmt: skip
    assert reader(bdesk.engine, anna).status == "bounced"  # recorded all the same
    counts = {f: _count(imap, f) for f in ("INBOX", "Unrecognised")}
    assert counts == {"INBOX": 1, "Unrecognised": 1}
    again = CliRunner().invoke(cli, ["bounces", "process", imap_url], obj=bdesk)
    assert "read 1 messages: duplicate 1" in again.output  # nothing counted twice
    assert reader(bdesk.engine, anna).bounce_count == 1
    imap.logout()


def test_a_server_without_move_gets_copy_then_delete_and_expunge(
    settings: Settings, desk: Desk, tmp_path: Path
) -> None:
    bdesk = Desk(replace(settings, bounce_address=BOUNCE_ADDRESS))
    anna, _, _ = seed_readers(bdesk.engine)
    # the capabilities dovecot announces, MOVE left out: only COPY and EXPUNGE remain
    without_move = "imap_capability = IMAP4rev1 LITERAL+ SASL-IR LOGIN-REFERRALS ID ENABLE\n"
    with dovecot(tmp_path, without_move) as url:
        imap = _imap(url)
        _, caps = imap.capability()
        assert b"MOVE" not in caps[0].split()
        for raw in (dsn(return_paths(SECRET, BOUNCE_ADDRESS, 1, "")(anna), "anna@example.org"),
                    plain(BOUNCE_ADDRESS, "A letter to the editor", n=3)):  # fmt: skip
            imap.append("INBOX", None, None, raw.replace(b"\n", b"\r\n"))

        result = CliRunner().invoke(cli, ["bounces", "process", url], obj=bdesk)

        assert result.exit_code == 0, result.output
        assert "read 2 messages: hard 1, unrecognised 1" in result.output
        counts = {f: _count(imap, f) for f in ("INBOX", "Processed", "Unrecognised")}
        assert counts == {"INBOX": 0, "Processed": 1, "Unrecognised": 1}
        imap.logout()
    assert reader(bdesk.engine, anna).status == "bounced"


def test_a_wrong_imap_password_is_refused_by_name(
    settings: Settings, desk: Desk, imap_url: str
) -> None:
    bdesk = Desk(replace(settings, bounce_address=BOUNCE_ADDRESS))
    wrong = imap_url.replace("s3cret", "wrong")
    result = CliRunner().invoke(cli, ["bounces", "process", wrong], obj=bdesk)
    assert result.exit_code == 2
    assert "imap://bounces:***@127.0.0.1" in result.output and "login refused" in result.output
