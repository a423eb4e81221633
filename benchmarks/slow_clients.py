"""Slow-client benchmark: half-sent requests against ``alsql serve``, with and without
the read deadlines.

For each configuration the real server is started on a fresh SQLite database, then
``--clients`` connections are opened, not logged in: half send a request head and stop
half-way through it, half send a login head declaring a 1 MiB body and then 64 KiB of
it. The script polls every connection for ``--wait`` seconds and reports how many the
server still holds open at the end, when the server closed them (median / max per kind), the
server's resident memory before and after (VmRSS, and its peak VmHWM), and whether a
normal request is answered meanwhile.

Configurations: ``no deadlines`` (head and body deadlines of a million seconds: what
uvicorn does by itself, the code before) and ``defaults`` (10 s head, 30 s body).

    python benchmarks/slow_clients.py [--clients 600] [--wait 35]
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPORT = Path(__file__).parent / "reports" / "slow_clients.json"
CONFIGS = {"no deadlines": {"WEB_HEADER_TIMEOUT": "1000000", "WEB_BODY_TIMEOUT": "1000000"},
           "defaults": {}}
HEAD = b"GET /login HTTP/1.1\r\nHost: bench\r\nUser-Agent: slow"
BODY = (b"POST /login HTTP/1.1\r\nHost: bench\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: 1048576\r\n\r\n" + b"a" * 65536)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _memory(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of ``pid`` in MB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    return out


def run(config: str, clients: int, wait: float, folder: Path) -> dict:
    db = f"sqlite:///{folder / (config.replace(' ', '_') + '.db')}"
    subprocess.run([sys.executable, "-c", "from alsql.cli import main; main()", "--db", db, "init"],
                   check=True, capture_output=True)
    port = _free_port()
    env = {**os.environ, "ALSQL_DATABASE_URL": db, "ALSQL_SECRET_KEY": "bench",
           **{f"ALSQL_{k}": v for k, v in CONFIGS[config].items()}}
    server = subprocess.Popen([sys.executable, "-c", "from alsql.cli import main; main()", "serve", "--port",
                               str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                httpx.get(f"{base}/login", timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        before = _memory(server.pid)
        sel = selectors.DefaultSelector()
        opened = time.monotonic()
        for k in range(clients):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(HEAD if k % 2 == 0 else BODY)
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ, "head" if k % 2 == 0 else "body")
        sent = time.monotonic() - opened
        closed_at: dict[str, list[float]] = {"head": [], "body": []}
        normal = None
        while time.monotonic() - opened < wait and sum(map(len, closed_at.values())) < clients:
            for key, _ in sel.select(timeout=0.5):
                try:
                    data = key.fileobj.recv(65536)
                except (ConnectionResetError, BlockingIOError):
                    data = b""
                if not data:
                    closed_at[key.data].append(time.monotonic() - opened)
                    sel.unregister(key.fileobj)
                    key.fileobj.close()
            if normal is None and time.monotonic() - opened > 1:
                t = time.perf_counter()
                status = httpx.get(f"{base}/login", timeout=60).status_code
                normal = {"status": status, "ms": round((time.perf_counter() - t) * 1000, 1)}
        after = _memory(server.pid)
        for key in list(sel.get_map().values()):
            key.fileobj.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {
        "config": config, "clients": clients, "wait_s": wait, "send_s": round(sent, 2),
        "still_open": clients - sum(map(len, closed_at.values())),
        **{f"{kind}_closed_{name}_s": round(fn(times), 1) if times else None
           for kind, times in closed_at.items() for name, fn in (("median", statistics.median), ("max", max))},
        "rss_before_mb": round(before["VmRSS"], 1), "rss_after_mb": round(after["VmRSS"], 1),
        "peak_mb": round(after["VmHWM"], 1), "normal_request": normal,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=600)
    ap.add_argument("--wait", type=float, default=35.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run(config, args.clients, args.wait, Path(tmp)) for config in CONFIGS]
    print(f"{'config':<14}{'open after':>11}{'head closed s':>15}{'body closed s':>15}{'RSS MB before->after':>22}"
          f"{'peak MB':>9}{'normal request':>18}")
    for r in rows:
        n = r["normal_request"] or {}
        print(f"{r['config']:<14}{r['still_open']:>6}/{r['clients']:<4}"
              f"{str(r['head_closed_median_s']) + ' / ' + str(r['head_closed_max_s']):>15}"
              f"{str(r['body_closed_median_s']) + ' / ' + str(r['body_closed_max_s']):>15}"
              f"{str(r['rss_before_mb']) + ' -> ' + str(r['rss_after_mb']):>22}{r['peak_mb']:>9}"
              f"{str(n.get('status')) + ' in ' + str(n.get('ms')) + ' ms':>18}")
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps({"load_average": os.getloadavg(), "rows": rows}, indent=2) + "\n")
    print(f"report: {REPORT.relative_to(Path(__file__).parent.parent)}")


if __name__ == "__main__":
    main()
