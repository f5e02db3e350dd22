"""A corpus of real returned mail (tests/bounces/corpus: 191 messages from 62 MTA and
provider families, each source's licence in LICENCES.md) against a table judged by
reading each message, without a classifier (expected.csv: recipient, reason, hard, and
why). For every row the question a reader would ask must be answered alike: is this
address bounced for good? The reasons' agreement is printed. Where Debian's libsisimai-perl
(the field's reference classifier) is installed, it judges the same messages and each
disagreement with it is listed."""

from __future__ import annotations

import csv
import shutil
import subprocess
from pathlib import Path

import pytest

from newsletter.bounces.classify import classify
from newsletter.bounces.verdict import COMPLAINT, DELAYED, HARD, OURS, SOFT, Verdict
from newsletter.errors import InputError
from newsletter.readers.addresses import normalise_address
from newsletter.reasons import HARD as HARD_REASONS
from newsletter.reasons import REASONS

CORPUS = Path(__file__).parent / "bounces" / "corpus"
ROWS = list(csv.DictReader((CORPUS / "expected.csv").read_text(encoding="utf-8").splitlines()))


def judged(file: str) -> Verdict:
    return classify((CORPUS / "messages" / file).read_bytes(), None)


def is_hard(verdict: Verdict) -> bool:
    """A hard bounce in the reference's sense: the recipient's own address failed."""
    return verdict.kind == HARD and verdict.reason in HARD_REASONS


def reason_of(verdict: Verdict) -> str:
    return verdict.reason or {COMPLAINT: "feedback", DELAYED: "delivered"}.get(verdict.kind, "")


def as_stored(address: str) -> str | None:
    try:
        return normalise_address(address)
    except InputError:
        return None  # the source's own recipient is malformed


# Rows the classifier is known to get wrong, each with why; a fix makes its test fail
# (strict), so the entry is removed with it.
KNOWN_MISSES = {
    ("flufl-simple_43.eml", "some.name.16565@some.domain"): "the notice names no recipient; "
    "only the returned message's Received line does, and that is no report to act on",
}


# Recipients a verdict leaves out on purpose: a notice failing several addresses names
# only those its worst reason is about (the others are untouched, as with a DSN)
LEFT_OUT = {("flufl-yahoo_10.eml", "usery@example.com")}


def test_the_corpus_is_as_large_and_varied_as_the_table_says() -> None:
    files = {p.name for p in (CORPUS / "messages").iterdir()}
    assert files == {row["file"] for row in ROWS}
    assert len(files) >= 150 and len({row["family"] for row in ROWS}) >= 25
    assert all(row["licence"] and row["source_path"] for row in ROWS)
    assert {row["reason"] for row in ROWS} <= set(REASONS)


def bounced_for_good(row: dict[str, str], verdict: Verdict) -> bool:
    """Whether this row's address would be bounced for good: the verdict names it (or
    the row names no whole address) and its reason is the address's own."""
    stored = as_stored(row["recipient"])
    named = stored is None or stored in verdict.addresses
    return named and is_hard(verdict)


@pytest.mark.parametrize(
    "row",
    [
        pytest.param(row, marks=pytest.mark.xfail(strict=True, reason=why))
        if (why := KNOWN_MISSES.get((row["file"], row["recipient"])))
        else row
        for row in ROWS
    ],
    ids=lambda row: f"{row['file']}:{row['recipient']}",
)
def test_every_row_of_the_table_is_judged_alike(row: dict[str, str]) -> None:
    verdict = judged(row["file"])
    assert bounced_for_good(row, verdict) == (row["hard"] == "yes"), (
        verdict.kind, verdict.reason, verdict.addresses, row["why"]
    )  # fmt: skip
    stored = as_stored(row["recipient"])
    if verdict.kind in (SOFT, OURS) and stored and (row["file"], stored) not in LEFT_OUT:
        # a soft bounce counts toward the soft limit, a refusal of ours toward the send's
        # health: each must name the reader it is about
        assert stored in verdict.addresses, (verdict.kind, verdict.addresses)


def test_the_agreement_with_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    hard = sum(bounced_for_good(r, judged(r["file"])) == (r["hard"] == "yes") for r in ROWS)
    reasons = sum(reason_of(judged(r["file"])) == r["reason"] for r in ROWS)
    with capsys.disabled():
        print(f"\ncorpus: {len(ROWS)} rows; hard or not agrees on {hard}, the reason on {reasons}")
    assert hard == len(ROWS) - len(KNOWN_MISSES)


@pytest.mark.skipif(
    shutil.which("perl") is None
    or subprocess.run(["perl", "-MSisimai", "-e", "1"], capture_output=True).returncode != 0,
    reason="no Sisimai (apt-get install libsisimai-perl)",
)
def test_sisimai_judges_the_corpus_too_and_each_disagreement_is_listed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    files = sorted(p.name for p in (CORPUS / "messages").iterdir())
    out = subprocess.run(
        ["perl", str(CORPUS / "sisimai.pl"), *files], cwd=CORPUS / "messages",
        capture_output=True, text=True, timeout=300, check=True,
    ).stdout  # fmt: skip
    theirs: dict[tuple[str, str], tuple[str, bool]] = {}
    for line in out.splitlines():
        file, address, reason, hard = [*line.split("\t"), "", "", ""][:4]
        theirs[(file, address)] = (reason, hard == "1")
    disagreements, hard_agree, table_hard, table_reason = [], 0, 0, 0
    for row in ROWS:
        verdict = judged(row["file"])
        reason, hard = theirs.get((row["file"], row["recipient"]), ("(none)", False))
        hard_agree += hard == is_hard(verdict)
        table_hard += hard == (row["hard"] == "yes")
        table_reason += reason == row["reason"]
        if reason != reason_of(verdict) or hard != is_hard(verdict):
            disagreements.append(
                f"{row['file']} {row['recipient']}: Sisimai {reason}{' hard' if hard else ''}, "
                f"ours {reason_of(verdict) or verdict.kind}{' hard' if is_hard(verdict) else ''}"
            )
    with capsys.disabled():
        print(
            f"\nSisimai against the table: hard or not agrees on {table_hard} of {len(ROWS)}, "
            f"the reason on {table_reason}"
        )
        print(f"Sisimai against ours: hard or not agrees on {hard_agree} of {len(ROWS)}; the "
              f"reason differs on {len(disagreements)}:")  # fmt: skip
        for line in disagreements:
            print("  " + line)
    assert len(theirs) >= len(files) - 5  # it read them: only a few it cannot parse at all
