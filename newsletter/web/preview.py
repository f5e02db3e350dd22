"""Preview of one issue: the inlined HTML at desktop and phone widths, the text part,
the raw message and the preflight report, reloaded when a template file changes."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    jsonify,
    redirect,
    render_template_string,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue

from newsletter.app import Desk
from newsletter.compose.copies import PreviewCopy, preview_copy
from newsletter.compose.messages import build_message, message_id
from newsletter.web import MAIL_CSP
from newsletter.web.desk import signed_in

bp = Blueprint("preview", __name__, url_prefix="/preview")

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Preview: {{ subject }}</title>
<style>
 body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#eef0f3;color:#222}
 header{padding:12px 20px;background:#fff;border-bottom:1px solid #ccd}
 main{display:flex;gap:20px;padding:20px;align-items:flex-start;flex-wrap:wrap}
 figure{margin:0} figcaption{font-weight:600;margin-bottom:6px}
 iframe{border:1px solid #bbc;background:#fff;height:1400px}
 .error{color:#a00}.warning{color:#875a00} pre{white-space:pre-wrap;max-width:640px}
</style></head><body>
<header><strong>{{ subject }}</strong> — issue {{ issue_id }}, as {{ reader }}
 · <a href="{{ base }}/text{{ query }}">text part</a>
 · <a href="{{ base }}/eml{{ query }}">raw .eml</a>
 · <a href="{{ base }}/preflight{{ query }}">preflight (JSON)</a>
 <ul id="preflight">{% for line in preflight %}<li>{{ line }}</li>{% endfor %}</ul>
</header>
<main>
 <figure><figcaption>Desktop, 640 px</figcaption>
  <iframe title="desktop" width="640" src="{{ base }}/html{{ query }}"></iframe></figure>
 <figure><figcaption>Phone, 375 px</figcaption>
  <iframe title="phone" width="375" src="{{ base }}/html{{ query }}"></iframe></figure>
 <figure><figcaption>Plain text</figcaption><pre>{{ text }}</pre></figure>
</main>
<script nonce="{{ csp_nonce }}">
 let seen = null;
 setInterval(async () => {
   const r = await fetch("{{ base }}/version"); const v = await r.text();
   if (seen !== null && v !== seen) location.reload(); seen = v;
 }, 1000);
</script>
</body></html>"""


@bp.before_request
def _editors_only() -> ResponseReturnValue | None:
    """Unsent issues and readers' copies are for editors; `newsletter preview` on a
    laptop opens it to whoever reaches 127.0.0.1."""
    if current_app.config.get("PREVIEW_OPEN") or signed_in() is not None:
        return None
    if request.method in ("GET", "HEAD"):
        return redirect(url_for("desk.login", next=request.full_path))
    abort(401)


def _copy(issue: str) -> PreviewCopy:
    desk: Desk = current_app.config["DESK"]
    return preview_copy(desk.engine, desk.settings, issue, request.args.get("as"), desk.now())


@bp.get("/<issue>")
def page(issue: str) -> str:
    copy = _copy(issue)
    as_email = request.args.get("as")
    return render_template_string(
        PAGE,
        subject=copy.composed.rendered.subject,
        issue_id=copy.issue_id,
        reader=copy.reader.email,
        base=f"/preview/{issue}",
        query="?" + urlencode({"as": as_email}) if as_email else "",
        preflight=copy.composed.preflight.lines(),
        text=copy.text,
    )


@bp.get("/<issue>/html")
def html(issue: str) -> Response:
    response = Response(_copy(issue).html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = MAIL_CSP
    return response


@bp.get("/<issue>/text")
def text(issue: str) -> Response:
    return Response(_copy(issue).text, mimetype="text/plain")


@bp.get("/<issue>/eml")
def eml(issue: str) -> Response:
    copy = _copy(issue)
    msgid = message_id(copy.issue_id, copy.reader.id, copy.composed.sender)
    data = build_message(copy.composed.prepared, copy.reader, copy.values, msgid)
    return Response(
        data,
        mimetype="message/rfc822",
        headers={"Content-Disposition": f'attachment; filename="issue-{copy.issue_id}.eml"'},
    )


@bp.get("/<issue>/preflight")
def preflight(issue: str) -> Response:
    return jsonify(_copy(issue).composed.preflight.as_dict())


@bp.get("/<issue>/version")
def version(issue: str) -> str:
    """Changes whenever a template file changes, so the page knows to reload."""
    desk: Desk = current_app.config["DESK"]
    folder = Path(desk.settings.templates)
    stamps = [p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()]
    return str(max(stamps, default=0) + len(stamps))
