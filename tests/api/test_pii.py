"""PII redaction: what is removed, and that no input makes it slow."""

from __future__ import annotations

import subprocess
import sys

from api.pii import PiiRedactor

# Quadratic backtracking would need hours for these (the old e-mail pattern: ~0.3 s per 10,000
# characters, times the square of the growth); linear redaction needs well under a second.
PATHOLOGICAL = [
    '"a" * 1_000_000',
    '"a." * 500_000',
    '"a" * 500_000 + "@" + "b" * 500_000',
]


def test_redaction_is_linear_on_long_runs_without_a_domain():
    """Run in a child process so a backtracking pattern is killed instead of hanging the suite."""
    script = ("from api.pii import PiiRedactor\n"
              f"texts = [{', '.join(PATHOLOGICAL)}]\n"
              "assert [r.counts for r in PiiRedactor().redact(texts)] == [{}, {}, {}]\n")
    done = subprocess.run([sys.executable, "-c", script], timeout=60, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_emails_are_still_found_where_a_run_of_address_characters_starts():
    texts = ["mail anna.svensson+cx@example.co.uk now", "x" * 5000 + " a-b@mail.example.se",
             "(ola@firma.pl)", "no at sign " * 1000, "user@localhost is not an address"]
    assert [r.text for r in PiiRedactor(["email"]).redact(texts)] == [
        "mail [EMAIL] now", "x" * 5000 + " [EMAIL]", "([EMAIL])", "no at sign " * 1000,
        "user@localhost is not an address"]
