"""The editors' desk: log in, put the week's issue together beside its preview, approve
it, send yourself a test, follow a send, look up a reader. Server-rendered forms that
work without JavaScript; every action calls the same library functions as the CLI.

Every POST carries the session's CSRF token; every page but the login needs a login
(`session`). The pages are `week`, `issues` and `readers`; importing them registers them.
"""

from newsletter.web.desk import admin, issues, readers, week
from newsletter.web.desk.session import bp, csrf_token, signed_in

__all__ = ["admin", "bp", "csrf_token", "issues", "readers", "signed_in", "week"]
