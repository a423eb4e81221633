"""CPU seconds of an ``alsql`` call's startup, beside the code before, in one run.

Each command runs as a child process (``python -c "from alsql.cli import main; main()"
ARGS``, what the console script does) and costs the user + system CPU seconds of that
child (``resource.getrusage(RUSAGE_CHILDREN)`` before and after): wall time on a shared
machine says more about the neighbours than about the program.

Two trees are measured, alternating run by run so that both see the same load: the
code before (``--before``, a commit checked out into a temporary ``git worktree``) and
this working tree; each child is pointed at its tree with ``PYTHONPATH`` (checked: the
child reports which ``alsql`` it imported). Commands, each ``--runs`` times (median):

- ``import alsql``;
- ``alsql --help``;
- ``alsql status`` on a small SQLite database (a project, six images);
- ``alsql select --help`` and ``alsql select --strategy random --budget 2`` on a copy of
  that database (a fresh copy per run; the copy is not counted).

Each tree builds its own small database with its own code (``init``, ``project
create``, ``ingest``), not counted.

    python benchmarks/cli.py [--before COMMIT] [--runs 7]

Prints a table and writes ``benchmarks/reports/cli.json``. Target: ``alsql --help`` and
``alsql status`` under 0.3 CPU seconds.
"""

from __future__ import annotations

import os
import sys

# Scripts here import nothing from this folder; drop it from the path so a sibling script
# named like a standard module (select.py) cannot shadow that module.
if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
REPORT = HERE / "reports" / "cli.json"
# The commit before the CLI's imports were made lazy (every command module imported
# SQLAlchemy, Alembic, settings and the loaders at startup).
BEFORE = "83e5c2f54f54"
MAIN = "import sys; from alsql.cli import main; sys.argv[0] = 'alsql'; main()"


def _git(*args: str, cwd: Path = REPO) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@contextlib.contextmanager
def worktree(commit: str):
    """``commit`` checked out into a temporary folder (a detached git worktree); removed after."""
    tmp = Path(tempfile.mkdtemp(prefix="alsql-cli-before-"))
    path = tmp / "tree"
    _git("worktree", "add", "--detach", "--quiet", str(path), commit)
    try:
        yield path
    finally:
        _git("worktree", "remove", "--force", str(path))
        shutil.rmtree(tmp, ignore_errors=True)


def _env(tree: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(tree), "ALSQL_DATABASE_URL": "sqlite:///unused.db", "CI": "1"}


def child_cpu(argv: list[str], env: dict, cwd: Path) -> float:
    """User + system CPU seconds of one child process (its exit status must be 0)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=600)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[3:])}: exit {out.returncode}: {out.stderr.decode()[-500:]}")
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def prepare(tree: Path, work: Path) -> Path:
    """A small SQLite database built by ``tree``'s own CLI: a project and six 8x8 images."""
    from PIL import Image

    images = work / "images"
    images.mkdir(parents=True, exist_ok=True)
    for i in range(6):
        Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(images / f"{i}.png")
    db = work / "small.db"
    url = f"sqlite:///{db}"
    env = _env(tree)
    for args in (["init"], ["project", "create", "bench", "--classes", "a,b"], ["ingest", str(images)]):
        subprocess.run([sys.executable, "-c", MAIN, "--db", url, *args], env=env, cwd=work, check=True,
                       capture_output=True, timeout=600)
    return db


def commands(db: Path) -> dict[str, tuple[list[str], bool]]:
    """name -> (arguments after ``python``, whether a fresh copy of the database is needed)."""
    url = f"sqlite:///{db}"
    cli = ["-c", MAIN]
    return {
        "import alsql": (["-c", "import alsql"], False),
        "alsql --help": (cli + ["--help"], False),
        "alsql status (small SQLite db)": (cli + ["--db", url, "status"], False),
        "alsql select --help": (cli + ["select", "--help"], False),
        "alsql select random, budget 2 (small SQLite db)": (
            cli + ["--db", url, "select", "--project", "bench", "--strategy", "random", "--budget", "2"], True),
    }


def which_alsql(tree: Path) -> str:
    out = subprocess.run([sys.executable, "-c", "import alsql; print(alsql.__file__)"], env=_env(tree),
                         cwd=tree, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def measure(trees: dict[str, Path], work: Path, runs: int) -> dict:
    dbs = {name: prepare(tree, work / name) for name, tree in trees.items()}
    for name, tree in trees.items():
        got = Path(which_alsql(tree)).resolve()
        if not got.is_relative_to(tree.resolve()):
            raise RuntimeError(f"{name}: the child imported {got}, not the tree {tree}")
    cpu: dict[str, dict[str, list[float]]] = {}
    for _ in range(runs):
        for name, tree in trees.items():  # alternating: both trees see the same load
            env, cwd = _env(tree), work / name
            for label, (args, fresh) in commands(dbs[name]).items():
                if fresh:
                    shutil.copyfile(work / name / "small.db", work / name / "run.db")
                    args = [a.replace(str(dbs[name]), str(work / name / "run.db")) for a in args]
                cpu.setdefault(label, {}).setdefault(name, []).append(child_cpu([sys.executable, *args], env, cwd))
    return cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", default=BEFORE, help="the commit of the code before (default: %(default)s)")
    ap.add_argument("--runs", type=int, default=7, help="runs of each command per tree (median reported)")
    ap.add_argument("--no-report", action="store_true", help="print only")
    args = ap.parse_args()

    from rich.console import Console
    from rich.table import Table

    load = [round(os.getloadavg()[0], 1)]
    with worktree(args.before) as before, tempfile.TemporaryDirectory() as tmp:
        cpu = measure({"before": before, "after": REPO}, Path(tmp), args.runs)
    load.append(round(os.getloadavg()[0], 1))

    rows = {}
    table = Table(title=f"alsql startup: CPU seconds (user + sys) of the child, median of {args.runs}")
    for col in ("command", "before", "after", "after / before", "target"):
        table.add_column(col)
    for label, per in cpu.items():
        b, a = statistics.median(per["before"]), statistics.median(per["after"])
        target = 0.3 if label.startswith(("alsql --help", "alsql status")) else None
        rows[label] = {"before_s": round(b, 3), "after_s": round(a, 3), "ratio": round(a / b, 2) if b else None,
                       "target_s": target, "before_runs_s": [round(v, 3) for v in per["before"]],
                       "after_runs_s": [round(v, 3) for v in per["after"]]}
        met = "" if target is None else (f"< {target}: met" if a < target else f"< {target}: NOT met")
        table.add_row(label, f"{b:.3f}", f"{a:.3f}", f"{a / b:.2f}" if b else "", met)
    console = Console(width=None if sys.stdout.isatty() else 120)
    console.print(table)
    console.print(f"1-minute load average before / after: {load[0]} / {load[1]} on {os.cpu_count()} cores")
    if not args.no_report:
        report = {"benchmark": "cli", "runs": args.runs, "before_commit": _git("rev-parse", "--short", args.before),
                  "after_commit": _git("rev-parse", "--short", "HEAD"),
                  "after_tree_dirty": bool(_git("status", "--porcelain", "--", "alsql")),
                  "python": sys.version.split()[0], "cpu_cores": os.cpu_count(),
                  "load_average_1min_before_after": load, "commands": rows}
        REPORT.parent.mkdir(parents=True, exist_ok=True)
        REPORT.write_text(json.dumps(report, indent=2) + "\n")
        console.print(f"report: {REPORT}")


if __name__ == "__main__":
    main()
