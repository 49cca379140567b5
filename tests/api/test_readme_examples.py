"""The README's curl session runs against the real app; its `cxm` lines parse against the real CLI."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

README = Path(__file__).parents[2] / "README.md"
ROLE_OF = {"$INGEST": "ingest", "$ADMIN": "admin", "$AGENT": "agent", "$VIEWER": "viewer"}


def readme_curls() -> list[list[str]]:
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    return [shlex.split(line) for block in blocks for line in block.splitlines() if line.startswith("curl ")]


def as_request(argv: list[str]) -> tuple[str, str, str, dict | None]:
    """(method, path with query, role, json body) from a curl command line."""
    method, role, body, url = "GET", None, None, None
    args = iter(argv[1:])
    for arg in args:
        if arg == "-X":
            method = next(args)
        elif arg == "-H":
            name, _, value = next(args).partition(": ")
            if name == "X-API-Key":
                role = ROLE_OF[value]
        elif arg == "-d":
            body = json.loads(next(args))
        elif arg.startswith("http"):
            url = urlsplit(arg)
    assert url is not None and role is not None, argv
    return method, url.path + (f"?{url.query}" if url.query else ""), role, body


def test_readme_has_the_triage_and_dashboard_sessions():
    paths = {as_request(argv)[1].split("?")[0] for argv in readme_curls()}
    assert {"/v1/feedback", "/v1/admin/flag", "/v1/customers/at-risk", "/v1/metrics/nps",
            "/v1/topics/trends", "/v1/cases/$CASE"} <= paths


def test_readme_curl_session_works(api):
    case_id = None
    for argv in readme_curls():
        method, path, role, body = as_request(argv)
        if "$CASE" in path:
            path = path.replace("$CASE", str(case_id))
        response = api.call(method, path, role, json=body)
        assert response.status_code < 300, (" ".join(argv), response.text)
        if path.startswith("/v1/customers/at-risk"):
            flagged = {c["customer_id"]: c for c in response.json()["items"]}
            assert "cust-1" in flagged, "the README's detractor is not in the high-risk queue"
            case_id = flagged["cust-1"]["case"]["id"]
    history = api.call("GET", f"/v1/cases/{case_id}", "agent").json()
    assert history["status"] == "resolved"


def readme_cxm_lines() -> list[list[str]]:
    """Every `.venv/bin/cxm ...` line of the README's bash blocks, without its comment."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    lines = [line.split("  #")[0] for block in blocks for line in block.splitlines()]
    return [shlex.split(line)[1:] for line in lines if line.startswith(".venv/bin/cxm ")]


def test_readme_cxm_commands_parse_against_the_real_cli():
    """Each documented command line names a real command with options it accepts (not run)."""
    import typer

    from api.cli import app

    found = readme_cxm_lines()
    assert len(found) >= 10
    for line in found:
        command, ctx, args = typer.main.get_command(app), None, list(line)
        while hasattr(command, "list_commands"):  # a group (typer vendors its own click)
            ctx = command.context_class(command, info_name=command.name or "cxm", parent=ctx)
            sub = command.get_command(ctx, args[0]) if args else None
            assert sub is not None, f"README: no command {args[:1]} in `cxm {' '.join(line)}`"
            command, args = sub, args[1:]
        command.make_context(command.name, args, parent=ctx)  # unknown or missing options raise
