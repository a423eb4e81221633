"""The Azurite blob emulator as a pytest fixture: ``azurite`` yields a connection string.

The binary: ``$ALSQL_AZURITE_BIN``, else ``.ci/node/node_modules/.bin/azurite-blob``
(``.ci/run`` installs it: ``npm install --prefix .ci/node azurite@3.35.0``), else
``azurite-blob`` on PATH. Without one the tests skip (fail under ALSQL_REQUIRE_ALL=1).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import need

__all__ = ["azurite", "azurite_binary", "ACCOUNT", "KEY"]

ACCOUNT = "devstoreaccount1"
# Azurite's documented, public development key (not a secret).
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
ROOT = Path(__file__).resolve().parent.parent


def azurite_binary() -> str | None:
    for candidate in (os.environ.get("ALSQL_AZURITE_BIN"), str(ROOT / ".ci/node/node_modules/.bin/azurite-blob")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("azurite-blob")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def azurite(tmp_path_factory):
    """A running Azurite blob service for the session; yields its connection string."""
    binary = azurite_binary()
    if binary is None:
        need("Azurite not found (set ALSQL_AZURITE_BIN or run: npm install --prefix .ci/node azurite@3.35.0)")
    port = _free_port()
    location = tmp_path_factory.mktemp("azurite")
    proc = subprocess.Popen(
        [binary, "--blobHost", "127.0.0.1", "--blobPort", str(port), "--skipApiVersionCheck",
         "--loose", "--disableTelemetry", "--location", str(location)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 60
        while True:
            if proc.poll() is not None:
                need(f"Azurite exited at start with code {proc.returncode}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.time() > deadline:
                    need("Azurite did not start listening within 60 s")
                time.sleep(0.2)
        yield (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
            f"BlobEndpoint=http://127.0.0.1:{port}/{ACCOUNT};"
        )
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
