"""The wheel, as `pip install .` makes it, installed into a fresh virtualenv outside the
source tree: the demo runs and the web pages answer (every template, migration and
default file travels with the package)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
import venv
from pathlib import Path

import pytest

from .conftest import ROOT, free_port

pytestmark = pytest.mark.slow

SHIPPED = ("pyproject.toml", "README.md", "newsletter", "templates", "privacy", "subscribers")


def build_wheel(tmp_path: Path) -> Path:
    """From a copy of the tracked sources, so the build leaves nothing in the tree."""
    source = tmp_path / "source"
    tracked = subprocess.run(
        ["git", "ls-files", *SHIPPED], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for name in tracked:
        target = source / name
        target.parent.mkdir(parents=True, exist_ok=True)
        origin = ROOT / name
        if origin.is_symlink():
            target.symlink_to(os.readlink(origin))
        else:
            shutil.copy2(origin, target)
    out = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--quiet", "-w", str(out), str(source)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    [wheel] = out.glob("newsletter_desk-*.whl")
    return wheel


def fresh_virtualenv(tmp_path: Path, wheel: Path) -> Path:
    """A new virtualenv holding the wheel; its dependencies are this environment's,
    reached by a path file (nothing is downloaded, nothing of the source tree is seen)."""
    env = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env)
    python = env / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    ours = sysconfig.get_paths()["purelib"]
    (Path(site) / "dependencies.pth").write_text(ours + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
         "--no-index", "--quiet", str(wheel)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return env


def test_the_wheel_installed_elsewhere_runs_the_demo_and_serves_the_pages(
    tmp_path: Path,
) -> None:
    env = fresh_virtualenv(tmp_path, build_wheel(tmp_path))
    site = tmp_path / "site"
    site.mkdir()
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSLETTER_", "PYTHON"))}
    where = subprocess.run(
        [str(env / "bin" / "python"), "-c", "import newsletter; print(newsletter.__file__)"],
        cwd=site, env=environ, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert where.startswith(str(env)), where  # the wheel's copy, not the source tree's
    demo = subprocess.run(
        [str(env / "bin" / "newsletter"), "demo"],
        cwd=site, env=environ, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert demo.returncode == 0, demo.stderr
    assert "sent now 3" in demo.stdout
    assert len(list((site / "outbox").glob("*.eml"))) == 3
    for laid_out in ("templates/issue.html", "privacy/wording.txt", "subscribers/README.md"):
        assert (site / laid_out).is_file(), laid_out
    port = free_port()
    server = subprocess.Popen(
        [str(env / "bin" / "newsletter"), "serve", "--port", str(port)],
        cwd=site, env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        pages = {path: fetch(port, path, server) for path in ("/subscribe", "/desk/login")}
    finally:
        server.terminate()
        server.communicate(timeout=30)
    assert b"privacy policy" in pages["/subscribe"].lower()
    assert b'type="password"' in pages["/desk/login"]


def fetch(port: int, path: str, server: subprocess.Popen[str]) -> bytes:
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
                assert answer.status == 200, path
                body: bytes = answer.read()
                return body
        except (ConnectionError, urllib.error.URLError):
            assert server.poll() is None, "the server ended"
            assert time.monotonic() < deadline, "the server never answered"
            time.sleep(0.1)
