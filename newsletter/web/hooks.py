"""Sending providers' webhooks: Amazon SES through SNS (each message signed by SNS's
certificate, the topic ours, a subscription confirmed), Mailgun (HMAC-SHA256), SendGrid
(the batch signed with ECDSA P-256) and Postmark (basic authentication). A hook whose
setting is unset does not exist (404); a request whose signature does not verify is
refused (401) and changes nothing. The events become the same ledger entries as
returned mail (newsletter.bounces.providers)."""

from __future__ import annotations

import base64
import binascii
import hmac
from hashlib import sha256

from flask import Blueprint, Response, abort, current_app, jsonify, request

from newsletter.app import Desk
from newsletter.bounces.processor import BounceProcessor, BounceReport
from newsletter.bounces.sns import confirm_subscription, fresh, verified
from newsletter.curation.fetch import FetchLimits
from newsletter.errors import FeedError, InputError

bp = Blueprint("hooks", __name__, url_prefix="/hooks")
FRESH = 15 * 60  # seconds a signed timestamp stays good: an old request replayed is refused


def _desk() -> Desk:
    desk: Desk = current_app.config["DESK"]
    return desk


def _take(source: str) -> Response:
    desk, report = _desk(), BounceReport()
    try:
        BounceProcessor(desk.engine, desk.settings).take_events(
            request.get_data(), source, desk.now(), report
        )
    except InputError as exc:
        return Response(f"{exc}\n", 400, mimetype="text/plain")
    return jsonify(read=report.read, kinds=report.kinds)


def _fresh(stamp: str) -> bool:
    return stamp.isdigit() and abs(_desk().now().timestamp() - int(stamp)) <= FRESH


@bp.post("/ses")
def ses() -> Response:
    settings = _desk().settings
    if not settings.ses_topic_arn:
        abort(404)
    message = request.get_json(silent=True, force=True)  # SNS posts JSON as text/plain
    if not isinstance(message, dict) or message.get("TopicArn") != settings.ses_topic_arn:
        abort(401)
    if not fresh(message, _desk().now()):  # signed, so checked with the signature below
        abort(401)
    limits = FetchLimits.from_settings(settings)
    try:
        if not verified(message, limits, settings.sns_host):
            abort(401)
    except InputError:
        abort(401)
    if message.get("Type") == "SubscriptionConfirmation":
        try:
            confirm_subscription(message, limits, settings.sns_host)
        except (FeedError, InputError) as exc:
            return Response(f"the subscription could not be confirmed: {exc}\n", 502)
        return jsonify(subscribed=settings.ses_topic_arn)
    if message.get("Type") != "Notification":
        return jsonify(read=0, kinds={})
    return _take("ses webhook")


@bp.post("/mailgun")
def mailgun() -> Response:
    key = _desk().settings.mailgun_signing_key
    if not key:
        abort(404)
    body = request.get_json(silent=True)
    signature = body.get("signature") if isinstance(body, dict) else None
    if not isinstance(signature, dict):
        abort(401)
    stamp, token = str(signature.get("timestamp", "")), str(signature.get("token", ""))
    expected = hmac.new(key.encode(), (stamp + token).encode(), sha256).hexdigest()
    if not _fresh(stamp) or not hmac.compare_digest(expected, str(signature.get("signature", ""))):
        abort(401)
    return _take("mailgun webhook")


@bp.post("/sendgrid")
def sendgrid() -> Response:
    key = _desk().settings.sendgrid_public_key
    if not key:
        abort(404)
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    stamp = request.headers.get("X-Twilio-Email-Event-Webhook-Timestamp", "")
    given = request.headers.get("X-Twilio-Email-Event-Webhook-Signature", "")
    try:
        public = serialization.load_der_public_key(base64.b64decode(key))
        signature = base64.b64decode(given, validate=True)
        if not isinstance(public, ec.EllipticCurvePublicKey) or not _fresh(stamp):
            abort(401)
        public.verify(signature, stamp.encode() + request.get_data(), ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError, binascii.Error):
        abort(401)
    return _take("sendgrid webhook")


@bp.post("/postmark")
def postmark() -> Response:
    expected = _desk().settings.postmark_webhook_auth
    if not expected:
        abort(404)
    auth = request.authorization
    given = f"{auth.username}:{auth.password}" if auth and auth.type == "basic" else ""
    if not hmac.compare_digest(given.encode(), expected.encode()):
        return Response("", 401, {"WWW-Authenticate": 'Basic realm="hooks"'})
    return _take("postmark webhook")
