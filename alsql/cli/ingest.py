"""``alsql ingest FOLDER|az://container/prefix``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from alsql.cli.common import console, get_engine, show_progress
from alsql.errors import AlsqlError

__all__ = ["register"]


def ingest(
    source: Annotated[str, typer.Argument(help=(
        "Folder (searched recursively) or az://container/prefix. Azure credentials: a connection string "
        "in ALSQL_AZURE_CONNECTION_STRING or AZURE_STORAGE_CONNECTION_STRING, else an account URL "
        "(https://ACCOUNT.blob.core.windows.net) in ALSQL_AZURE_ACCOUNT_URL or AZURE_STORAGE_ACCOUNT_URL "
        "with DefaultAzureCredential"))],
    entity_regex: Annotated[
        Optional[str],
        typer.Option(help="Regex on the relative path; group 'entity' (or the first group) is the entity"),
    ] = None,
    attributes: Annotated[
        Optional[Path],
        typer.Option(help="CSV with a 'path' column: entity, captured_at, latitude, longitude, more"),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Rows per bulk insert")] = 1000,
    workers: Annotated[
        Optional[int], typer.Option(min=1, help="Concurrent reads (default: 1 local, 16 remote)")
    ] = None,
    segment: Annotated[
        Optional[str], typer.Option(help="Video / sound item length, e.g. 2s, 500ms, at least 100ms "
                                         "(default: video 2s, audio 1s); at most 200,000 items per file")
    ] = None,
    stride: Annotated[
        Optional[str], typer.Option(help="Start of one segment to the next, at least 100ms (default: --segment)")
    ] = None,
    max_bytes: Annotated[
        Optional[list[str]],
        typer.Option(help="Largest file read: 500M for every kind, or image=500M / video=8G / audio=2G "
                          "(repeat; default image 256M, video and audio 64G); larger files are refused"),
    ] = None,
    max_pixels: Annotated[
        Optional[int],
        typer.Option(min=1, help="Largest image, width x height (default: setting max_pixels, 64000000)"),
    ] = None,
    update: Annotated[
        bool, typer.Option("--update", help="Apply --entity-regex and --attributes again to items already present")
    ] = False,
    show: Annotated[int, typer.Option(min=0, help="Duplicates and warnings listed (each); the rest are counted")] = 20,
) -> None:
    """Index every image (png, jpg, jpeg, bmp, gif, webp, tif), video (mp4, mkv, webm, mov, avi)
    and sound file (wav, flac, ogg, mp3, m4a) under SOURCE; video and sound become segments."""
    from alsql.loaders.ingest import ingest as run_ingest
    from alsql.media.kinds import MIN_SEGMENT_S, parse_seconds

    media = {"segment": parse_seconds(segment, "--segment", MIN_SEGMENT_S) if segment else None,
             "stride": parse_seconds(stride, "--stride", MIN_SEGMENT_S) if stride else None}
    media["max_bytes"] = _caps(max_bytes)
    media["max_pixels"] = max_pixels
    media["update"] = update
    engine = get_engine()
    if show_progress():
        with Progress(
            SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console, transient=True
        ) as progress:
            task = progress.add_task("ingesting", total=None)
            report = run_ingest(
                engine, source, entity_regex=entity_regex, attributes_csv=attributes, batch_size=batch_size,
                workers=workers, on_progress=lambda r: progress.update(task, description=f"ingesting: {r}"),
                **media,
            )
    else:
        report = run_ingest(
            engine, source, entity_regex=entity_regex, attributes_csv=attributes, batch_size=batch_size,
            workers=workers, **media,
        )
    console.print(str(report), markup=False, highlight=False)
    for line in report.details(show):
        console.print(line, markup=False, highlight=False, soft_wrap=True)  # a long path or URI stays on one line


def _caps(values: list[str] | None) -> dict[str, int] | None:
    """``["500M"]`` -> every kind; ``["image=500M", "video=8G"]`` -> those kinds."""
    from alsql.loaders.ingest import DEFAULT_MAX_BYTES, parse_size

    if not values:
        return None
    caps: dict[str, int] = {}
    for v in values:
        kind, sep, size = v.partition("=")
        if not sep:
            caps.update({k: parse_size(v) for k in DEFAULT_MAX_BYTES})
        elif kind.strip() in DEFAULT_MAX_BYTES:
            caps[kind.strip()] = parse_size(size)
        else:
            raise AlsqlError(f"--max-bytes {v!r}: expected SIZE or KIND=SIZE with KIND one of "
                             f"{', '.join(DEFAULT_MAX_BYTES)}")
    return caps


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest)
