"""Sending providers' events: Amazon SES (inside SNS), Mailgun, SendGrid and Postmark JSON,
from a saved file (`bounces process events.json`) and from their webhooks, each signed in
the test as the provider signs (a forged or stale signature is refused and changes
nothing)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flask.testing import FlaskClient

from newsletter.app import Desk
from newsletter.bounces.mailboxes import process_sources
from newsletter.bounces.providers import events, parse_events
from newsletter.compose.returnpath import ReturnPathReader, return_paths
from newsletter.errors import InputError
from newsletter.settings import Settings
from newsletter.store import tables as db
from newsletter.web import create_app

from .conftest import NOW, SECRET, seed_readers

BOUNCES = "bounces@news.example.org"


def reader_of(engine: sa.Engine, email: str) -> tuple[str, int]:
    s = db.subscribers
    with engine.connect() as conn:
        row = conn.execute(sa.select(s.c.status, s.c.bounce_count).where(s.c.email == email)).one()
        return row.status, row.bounce_count


def ses_bounce(address: str, source: str, kind: str = "Permanent", status: str = "5.1.1",
               diagnostic: str = "smtp; 550 5.1.1 user unknown") -> dict[str, Any]:  # fmt: skip
    inner = {
        "notificationType": "Bounce",
        "bounce": {"bounceType": kind, "bounceSubType": "General",
                   "bouncedRecipients": [{"emailAddress": address, "action": "failed",
                                          "status": status, "diagnosticCode": diagnostic}]},
        "mail": {"messageId": f"ses-{address}-{status}", "source": source,
                 "destination": [address]},
    }  # fmt: skip
    return {"Type": "Notification", "MessageId": "sns-1", "Message": json.dumps(inner)}


def test_each_providers_events_become_verdicts_per_recipient() -> None:
    reader = ReturnPathReader((SECRET,), BOUNCES)
    path = return_paths(SECRET, BOUNCES, 3, "")(41)
    documents = [
        ses_bounce("anna@example.org", path),
        ses_bounce("tom@example.org", path, "Permanent", "5.7.1",
                   "smtp; 550 5.7.1 Service unavailable, client IP blacklisted"),
        {"event-data": {"id": "mg-1", "event": "failed", "severity": "temporary",
                        "recipient": "lena@example.org",
                        "delivery-status": {"code": 452, "message": "4.2.2 Mailbox full"}}},
        [{"sg_event_id": "sg-1", "event": "spamreport", "email": "ivan@example.org"},
         {"sg_event_id": "sg-2", "event": "bounce", "type": "bounce", "status": "5.1.1",
          "email": "olga@xn--cesupi09d.jp", "reason": "550 5.1.1 unknown user"}],
        {"RecordType": "Bounce", "Type": "HardBounce", "ID": 7, "Email": "pyotr@example.org",
         "Details": "smtp;550 5.1.1 The email account does not exist"},
        {"RecordType": "Open", "ID": 8, "Recipient": "pyotr@example.org"},  # not ours to read
        {"notificationType": "AmazonSnsSubscriptionSucceeded"},
    ]  # fmt: skip
    flat = [d for doc in documents for d in (doc if isinstance(doc, list) else [doc])]
    found = [(e.provider, e.verdict.kind, e.verdict.addresses, e.verdict.reason)
             for e in events(flat, reader)]  # fmt: skip
    assert found == [
        ("ses", "hard", ("anna@example.org",), "userunknown"),
        ("ses", "ours", ("tom@example.org",), "blocked"),
        ("mailgun", "soft", ("lena@example.org",), "mailboxfull"),
        ("sendgrid", "complaint", ("ivan@example.org",), "feedback"),
        ("sendgrid", "hard", ("olga@地域猫.jp",), "userunknown"),
        ("postmark", "hard", ("pyotr@example.org",), "userunknown"),
    ]
    [first, *_] = events(flat, reader)
    assert first.verdict.target is not None and first.verdict.target.subscriber_id == 41


def test_a_saved_events_file_changes_the_readers_it_names_once(desk: Desk, tmp_path: Path) -> None:
    seed_readers(desk.engine, (("anna@example.org", ""), ("tom@example.org", "")))
    saved = tmp_path / "events.json"
    saved.write_text(json.dumps([
        ses_bounce("anna@example.org", "weekly@example.org"),
        ses_bounce("tom@example.org", "weekly@example.org", "Permanent", "5.7.1",
                   "smtp; 550 5.7.1 blocked using zen.spamhaus.org"),
    ]))  # fmt: skip
    for _ in range(2):
        report = process_sources(desk.engine, desk.settings, [str(saved)], NOW)
    assert report.kinds == {"duplicate": 2}
    assert reader_of(desk.engine, "anna@example.org") == ("bounced", 1)
    assert reader_of(desk.engine, "tom@example.org") == ("active", 0)  # our block listing


def test_a_file_that_is_not_json_is_refused_by_name_and_line(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"events.json: not JSON: line 2"):
        parse_events(b'{"a": 1}\n{oops\n', "events.json")


# ------------------------------------------------------------------ webhooks

MAILGUN_KEY = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"


@pytest.fixture
def hooked(desk: Desk, settings: Settings) -> tuple[FlaskClient, ec.EllipticCurvePrivateKey]:
    private = ec.generate_private_key(ec.SECP256R1())
    public = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    seed_readers(desk.engine, (("anna@example.org", ""), ("tom@example.org", "")))
    configured = replace(
        settings,
        clock=NOW,
        mailgun_signing_key=MAILGUN_KEY,
        sendgrid_public_key=base64.b64encode(public).decode(),
        postmark_webhook_auth="postmark:s3cret-hook",
    )
    return create_app(configured).test_client(), private


def mailgun_event(address: str, stamp: int, key: str = MAILGUN_KEY) -> dict[str, Any]:
    token = "a" * 50
    signature = hmac.new(key.encode(), f"{stamp}{token}".encode(), hashlib.sha256).hexdigest()
    return {
        "signature": {"timestamp": str(stamp), "token": token, "signature": signature},
        "event-data": {"id": f"mg-{address}", "event": "failed", "severity": "permanent",
                       "recipient": address,
                       "delivery-status": {"code": 550, "message": "5.1.1 No such user"}},
    }  # fmt: skip


def test_mailgun_events_count_only_when_signed_with_the_key_and_fresh(
    desk: Desk, hooked: Any
) -> None:
    client, _ = hooked
    now = int(NOW.timestamp())
    forged = client.post("/hooks/mailgun", json=mailgun_event("tom@example.org", now, "key-wrong"))
    stale = client.post("/hooks/mailgun", json=mailgun_event("tom@example.org", now - 3600))
    assert forged.status_code == stale.status_code == 401
    assert reader_of(desk.engine, "tom@example.org") == ("active", 0)
    taken = client.post("/hooks/mailgun", json=mailgun_event("tom@example.org", now))
    assert taken.status_code == 200 and taken.get_json()["kinds"] == {"hard": 1}
    assert reader_of(desk.engine, "tom@example.org") == ("bounced", 1)


def test_sendgrid_events_count_only_with_a_valid_signature(desk: Desk, hooked: Any) -> None:
    client, private = hooked
    stamp = str(int(NOW.timestamp()))
    body = json.dumps([{"sg_event_id": "sg-9", "event": "spamreport", "email": "anna@example.org"}])
    signature = private.sign(stamp.encode() + body.encode(), ec.ECDSA(hashes.SHA256()))
    headers = {"X-Twilio-Email-Event-Webhook-Timestamp": stamp,
               "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
               "Content-Type": "application/json"}  # fmt: skip
    tampered = body.replace("anna", "tom")
    assert client.post("/hooks/sendgrid", data=tampered, headers=headers).status_code == 401
    assert reader_of(desk.engine, "tom@example.org") == ("active", 0)
    answer = client.post("/hooks/sendgrid", data=body, headers=headers)
    assert answer.status_code == 200 and answer.get_json()["kinds"] == {"complaint": 1}
    assert reader_of(desk.engine, "anna@example.org")[0] == "complained"


def test_postmark_events_need_its_basic_authentication(desk: Desk, hooked: Any) -> None:
    client, _ = hooked
    event = {"RecordType": "Bounce", "Type": "HardBounce", "ID": 5, "Email": "anna@example.org",
             "Details": "550 5.1.1 The email account does not exist"}  # fmt: skip
    wrong = base64.b64encode(b"postmark:guess").decode()
    refused = client.post(
        "/hooks/postmark", json=event, headers={"Authorization": f"Basic {wrong}"}
    )
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Basic")
    right = base64.b64encode(b"postmark:s3cret-hook").decode()
    taken = client.post("/hooks/postmark", json=event, headers={"Authorization": f"Basic {right}"})
    assert taken.status_code == 200
    assert reader_of(desk.engine, "anna@example.org") == ("bounced", 1)


def test_a_hook_without_its_setting_does_not_exist_and_only_takes_post(
    desk: Desk, settings: Settings
) -> None:
    client = create_app(settings).test_client()
    for hook in ("mailgun", "sendgrid", "postmark", "ses"):
        assert client.post(f"/hooks/{hook}", json={}).status_code == 404
    configured = create_app(replace(settings, mailgun_signing_key=MAILGUN_KEY)).test_client()
    for method in ("GET", "HEAD", "OPTIONS"):
        answer = configured.open("/hooks/mailgun", method=method)
        assert answer.status_code in (405, 200 if method == "OPTIONS" else 405)
        assert "POST" in answer.headers.get("Allow", "")


# ------------------------------------------------------------------ SES through SNS

TOPIC = "arn:aws:sns:eu-west-1:123456789012:ses-notifications"


class SnsHost:
    """SNS's side on loopback: the signing certificate and the subscription link, over
    https with a certificate from a test authority the fetch is told to trust."""

    def __init__(self, tmp_path: Path) -> None:
        import datetime as dt
        import http.server
        import ssl
        import threading

        import trustme
        from cryptography import x509
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.test")])
        cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(self.key.public_key()).serial_number(1)
            .not_valid_before(dt.datetime(2026, 1, 1)).not_valid_after(dt.datetime(2036, 1, 1))
            .sign(self.key, hashes.SHA256())
        )  # fmt: skip
        pem = cert.public_bytes(serialization.Encoding.PEM)
        self.requests: list[str] = []
        seen = self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append(self.path)
                body = pem if self.path == "/cert.pem" else b"<ConfirmSubscriptionResponse/>"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        authority = trustme.CA()
        self.ca_file = tmp_path / "ca.pem"
        authority.cert_pem.write_to_path(str(self.ca_file))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        authority.issue_cert("localhost").configure_cert(context)
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.base = f"https://localhost:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def signed(self, message: dict[str, Any], key: Any = None) -> dict[str, Any]:
        from cryptography.hazmat.primitives.asymmetric import padding

        from newsletter.bounces.sns import string_to_sign

        message = {**message, "TopicArn": message.get("TopicArn", TOPIC), "SignatureVersion": "2",
                   "SigningCertURL": message.get("SigningCertURL", f"{self.base}/cert.pem")}  # fmt: skip
        signature = (key or self.key).sign(
            string_to_sign(message), padding.PKCS1v15(), hashes.SHA256()
        )
        return {**message, "Signature": base64.b64encode(signature).decode()}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def sns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    host = SnsHost(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(host.ca_file))  # the fetch trusts the test authority
    try:
        yield host
    finally:
        host.close()


def test_ses_through_sns_confirms_its_subscription_and_counts_only_signed_notices(
    desk: Desk, settings: Settings, sns: SnsHost
) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    seed_readers(desk.engine, (("anna@example.org", ""), ("tom@example.org", "")))
    configured = replace(settings, ses_topic_arn=TOPIC, sns_host="localhost", clock=NOW,
                         feed_private_hosts=("localhost",))  # fmt: skip
    client = create_app(configured).test_client()
    confirmation = sns.signed({
        "Type": "SubscriptionConfirmation", "MessageId": "m-1", "Token": "t-1",
        "Message": "You have chosen to subscribe", "Timestamp": "2026-11-23T10:00:00.000Z",
        "SubscribeURL": f"{sns.base}/subscribe?Action=ConfirmSubscription&Token=t-1",
    })  # fmt: skip
    answer = client.post("/hooks/ses", data=json.dumps(confirmation), content_type="text/plain")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert any(path.startswith("/subscribe?Action=ConfirmSubscription") for path in sns.requests)

    def notice(address: str, **fields: Any) -> dict[str, Any]:
        inner = json.loads(ses_bounce(address, "weekly@example.org")["Message"])
        return {"Type": "Notification", "MessageId": f"n-{address}", "Message": json.dumps(inner),
                "Timestamp": "2026-11-23T10:00:00.000Z", **fields}  # fmt: skip

    forged = sns.signed(notice("tom@example.org"), key=rsa.generate_private_key(65537, 2048))
    elsewhere = sns.signed(notice("tom@example.org", SigningCertURL="https://evil.example/c.pem"))
    other_topic = sns.signed(notice("tom@example.org", TopicArn="arn:aws:sns:eu-west-1:9:x"))
    tampered = {**sns.signed(notice("anna@example.org")), "MessageId": "n-changed"}
    # signed by SNS, but published more than an hour (and a clock's skew) ago: a replay; or
    # from the future
    replayed = sns.signed(notice("tom@example.org", Timestamp="2026-11-23T08:54:59.000Z"))
    ahead = sns.signed(notice("tom@example.org", Timestamp="2026-11-23T10:05:01.000Z"))
    undated = sns.signed(notice("tom@example.org", Timestamp="last Monday"))
    for refused in (forged, elsewhere, other_topic, tampered, replayed, ahead, undated):
        answer = client.post("/hooks/ses", data=json.dumps(refused), content_type="text/plain")
        assert answer.status_code == 401
    assert reader_of(desk.engine, "tom@example.org") == ("active", 0)
    assert reader_of(desk.engine, "anna@example.org") == ("active", 0)
    good = sns.signed(notice("anna@example.org", Timestamp="2026-11-23T08:55:01.000Z"))
    answer = client.post("/hooks/ses", data=json.dumps(good), content_type="text/plain")
    assert answer.status_code == 200 and answer.get_json()["kinds"] == {"hard": 1}
    assert reader_of(desk.engine, "anna@example.org") == ("bounced", 1)
