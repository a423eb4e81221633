"""Docs and help tell a new user what works: Azure credentials, --root, the entity regex, serving dbt docs."""

from __future__ import annotations

import re
import shlex
import subprocess
import time
import urllib.request
from pathlib import Path

from typer.testing import CliRunner

from alsql.cli import app
from tests.azurite import _free_port

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
ANALYSTS = (ROOT / "docs" / "analysts.md").read_text()


def _flat(text: str) -> str:
    return " ".join(text.replace("│", " ").split())


def test_quick_start_entity_regex_is_the_one_docs_recommend():
    quick = README[README.index("## Quick start"):README.index("## Commands")]
    ingest_line = next(line for line in quick.splitlines() if line.startswith("alsql ingest"))
    regex = re.search(r"--entity-regex '([^']+)'", ingest_line).group(1)
    recommended = re.search(r"--entity-regex '([^']+)'", ANALYSTS).group(1)
    assert regex == recommended
    # What it extracts is the seeds' join key (cam- and three digits), not the bare number.
    assert re.search(regex, "north/cam-017/2024-05-01.png").group(1) == "cam-017"
    assert "--root" in quick


def test_azure_credentials_documented_in_readme_and_ingest_help():
    for name in ("AZURE_STORAGE_CONNECTION_STRING", "ALSQL_AZURE_CONNECTION_STRING", "ALSQL_AZURE_ACCOUNT_URL",
                 "DefaultAzureCredential"):
        assert name in README
    out = _flat(CliRunner().invoke(app, ["ingest", "--help"], env={"COLUMNS": "200"}).output)
    for name in ("AZURE_STORAGE_CONNECTION_STRING", "DefaultAzureCredential", "ACCOUNT_URL"):
        assert name in out, out


def test_labels_import_root_documented():
    row = next(line for line in README.splitlines() if line.startswith("| `alsql labels import"))
    assert "--root DIR" in row and "relative to `--root`" in row


def test_marts_docs_suggests_a_serve_command_that_works(tmp_path):
    from alsql.cli.marts import docs_serve_hint

    target = tmp_path / "dbt target"
    target.mkdir()
    (target / "index.html").write_text("<html>dbt docs</html>")
    port = _free_port()
    hint = docs_serve_hint(target, port)
    command, _, rest = hint.partition("  then open ")
    proc = subprocess.Popen(shlex.split(command), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 20
        while True:
            try:
                with urllib.request.urlopen(rest.strip() + "index.html", timeout=2) as resp:
                    assert b"dbt docs" in resp.read()
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:  # a server slow to stop on a busy machine is not the hint's fault
            proc.kill()
            proc.wait(10)
    assert "dbt docs serve" not in hint
