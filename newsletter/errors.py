"""The one exception tree of the newsletter desk.

The CLI and the web turn these into an exit code or an HTTP status at the
boundary, never deeper.

NewsletterError
 ├── ConfigError           a setting is missing or malformed (names the variable)
 ├── InputError            bad input from a person or a file (names the field, file or line)
 │    ├── FeedError        a feed that cannot be read as RSS or Atom
 │    ├── MailboxError     a bounce mailbox that cannot be read (names the file or URL)
 │    └── TemplateError    a template that fails to load or render
 ├── NotFound              an article, issue or subscriber that does not exist
 ├── StateError            an action the object's state forbids (approve an empty issue, …)
 │    ├── LeaseHeld        another process holds the lease (it is sending now)
 │    ├── EditConflict     a save from a page older than the issue (another tab saved first)
 │    ├── CopyRefused      `db copy` stopped (names the table); the target is as it was
 │    └── ListHygieneError the last issue bounced or drew complaints past the limits
 ├── Cancelled             a message withdrawn before its body went to the relay
 └── DeliveryError         a transport could not hand a message on
      ├── TemporaryDeliveryError   worth retrying later (4xx, dropped connection)
      │    └── RelayUnavailable    the relay cannot be reached or refuses us: no message was tried
      ├── PermanentDeliveryError   not worth retrying (5xx)
      └── UncertainDelivery        the body went but no reply came: the relay may have it
"""

from __future__ import annotations


class NewsletterError(Exception):
    """Base of every error the desk raises on purpose."""

    exit_code = 1
    status = 500


class ConfigError(NewsletterError):
    exit_code = 2

    def __init__(self, name: str, problem: str) -> None:
        self.name = name
        super().__init__(f"{name}: {problem}")


class InputError(NewsletterError):
    exit_code = 2
    status = 400


class FeedError(InputError):
    def __init__(self, source: str, problem: str) -> None:
        self.source = source
        super().__init__(f"{source}: {problem}")


class MailboxError(InputError):
    def __init__(self, source: str, problem: str) -> None:
        self.source = source
        super().__init__(f"{source}: {problem}")


class TemplateError(InputError):
    status = 500


class NotFound(NewsletterError):
    exit_code = 3
    status = 404


class StateError(NewsletterError):
    exit_code = 4
    status = 409


class LeaseHeld(StateError):
    """Another process holds a lease this one asked for: it sends, this one stands by."""


class EditConflict(StateError):
    """A change made on a page that showed an older revision of the issue: another tab or
    editor saved since. Refused, so nobody's text is overwritten without their knowing."""


class CopyRefused(StateError):
    """`db copy` refused or stopped at one table (or the target's schema): nothing was kept."""

    def __init__(self, where: str, problem: str) -> None:
        self.where = where
        super().__init__(f"{where}: {problem}")


class ListHygieneError(StateError):
    """`send` refuses to start while the last issue's complaint or hard-bounce rate is too high."""

    exit_code = 6


class Cancelled(NewsletterError):
    """The sender took a message back before its body was handed over (the reader left)."""


class DeliveryError(NewsletterError):
    exit_code = 5

    def __init__(
        self, message: str, code: int | None = None, *, reason: str = "", phase: str = ""
    ) -> None:
        self.code = code
        self.reason = reason  # newsletter.reasons' word for it, when a reply was read
        self.phase = phase  # where in the SMTP transaction: MAIL, RCPT, DATA, end of DATA
        super().__init__(message)


class TemporaryDeliveryError(DeliveryError):
    pass


class RelayUnavailable(TemporaryDeliveryError):
    """Connection refused, a 421 greeting, a failed login or TLS: not the reader's fault."""


class PermanentDeliveryError(DeliveryError):
    pass


class UncertainDelivery(DeliveryError):
    """The whole body was handed over and the reply was lost: retrying could mail twice."""
