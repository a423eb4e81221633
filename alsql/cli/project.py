"""``alsql project create|list|show|set``."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.table import Table

from alsql.cli.common import console, get_engine

__all__ = ["register"]

project_app = typer.Typer(help="Labeling projects and their classes.", no_args_is_help=True)

# Scope options of create and set (alsql.scope): repeatable, each a facet of the scope.
KindOpt = Annotated[Optional[list[str]], typer.Option(
    "--kind", metavar="KIND", help="Scope: a media kind the project sees: image, video or audio (repeatable)")]
SourceOpt = Annotated[Optional[list[str]], typer.Option(
    "--source", metavar="URI",
    help="Scope: the uri or path of a video or sound file whose segments the project sees (repeatable)")]
PrefixOpt = Annotated[Optional[list[str]], typer.Option(
    "--prefix", metavar="PREFIX",
    help="Scope: a uri or path prefix of the items the project sees, matched literally (repeatable)")]


def _print_scope(conn, scope) -> None:
    from alsql.scope import unknown_sources

    console.print(f"scope: {scope.describe()}", markup=False)
    for uri in unknown_sources(conn, scope):
        console.print(f"note: --source {uri} is not an ingested file (yet): its segments join when it is ingested",
                      style="yellow", markup=False)


@project_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Project name")],
    classes: Annotated[str, typer.Option("--classes", help="Comma-separated class names, e.g. cat,dog")],
    description: Annotated[Optional[str], typer.Option(help="What the project labels")] = None,
    kind: KindOpt = None,
    source: SourceOpt = None,
    prefix: PrefixOpt = None,
) -> None:
    """Create a project with its classes (keys 1..9, 0, then letters), optionally limited to a scope
    of media kinds, source files or uri prefixes (default: every item).

    An item is in scope when it matches one of the kinds (if any) and one of the sources or
    prefixes (if any). A path without a scheme is taken as a local file uri.
    """
    from alsql.catalog import create_project, parse_classes
    from alsql.db import write_transaction
    from alsql.scope import check_scope, set_scope

    names = parse_classes(classes)
    given = {"kinds": kind or None, "sources_": source or None, "prefixes": prefix or None}
    check_scope(**given)  # a bad value creates nothing
    with write_transaction(get_engine()) as conn:
        proj = create_project(conn, name, names, description)
        scope = set_scope(conn, proj.project_id, **given)
        console.print(f"project [bold]{proj.name}[/bold] (id {proj.project_id}): {len(proj.classes)} classes")
        if not scope.everything:
            _print_scope(conn, scope)


@project_app.command("list")
def list_() -> None:
    """List projects with their class and label counts."""
    from alsql.catalog import list_projects

    with get_engine().connect() as conn:
        rows = list_projects(conn)
    table = Table("id", "name", "classes", "labels")
    for proj, labels in rows:
        table.add_row(str(proj.project_id), proj.name, str(len(proj.classes)), str(labels))
    console.print(table)


@project_app.command("show")
def show(name: Annotated[str, typer.Argument(help="Project name or id")]) -> None:
    """Show a project's classes with their keys and label counts."""
    from alsql.catalog import get_project
    from alsql.report import status_summary

    from alsql.scope import read_scope

    with get_engine().connect() as conn:
        proj = get_project(conn, name)
        scope = read_scope(conn, proj.project_id)
    summary = status_summary(get_engine(), proj.project_id)["projects"][0]
    console.print(f"[bold]{proj.name}[/bold] (id {proj.project_id}) {proj.description or ''}")
    console.print(f"scope: {scope.describe()}", markup=False)
    table = Table("class_id", "class", "key", "labels")
    for i, (cls, key) in enumerate(zip(proj.classes, proj.keys)):
        table.add_row(str(i), cls, key or "", str(summary["labels_per_class"].get(cls, 0)))
    console.print(table)


@project_app.command("set")
def set_(
    project: Annotated[str, typer.Option("--project", help="Project name or id")],
    overlap: Annotated[Optional[float], typer.Option(
        "--overlap", help="Share 0..1 of queued items also served to further annotators")] = None,
    overlap_annotators: Annotated[Optional[int], typer.Option(
        "--overlap-annotators", help="Distinct annotators an overlapped item is served to in all (2..20)")] = None,
    gold_rate: Annotated[Optional[float], typer.Option(
        "--gold-rate", help="Share 0..1 of the items served to an annotator that are gold items")] = None,
    image_size: Annotated[Optional[int], typer.Option(
        "--image-size", help="Pixels per side the project's networks take (images, video frames), 1..1024; "
                             "0: chosen from the items again (their median short side, capped)")] = None,
    kind: KindOpt = None,
    source: SourceOpt = None,
    prefix: PrefixOpt = None,
    scope_clear: Annotated[bool, typer.Option(
        "--scope-clear", help="Remove the whole scope (every item) before applying --kind/--source/--prefix")] = False,
) -> None:
    """Set the project's annotation-quality settings (docs/quality.md), input size and scope; prints them all.

    Scope: each of --kind, --source, --prefix given replaces that facet's values; --scope-clear
    removes them all first. An item is in scope when it matches one of the kinds (if any) and
    one of the sources or prefixes (if any); no scope: every item. No label is deleted: items
    labeled outside a new scope keep their annotations but leave the pool, training_set and
    evaluation_set (and selection, embed and infer) until the scope takes them in again.
    """
    from alsql.catalog import get_project
    from alsql.db import write_transaction
    from alsql.models.inputs import SIZE_CAP, check_image_size, project_image_size, set_project_image_size
    from alsql.quality import check_settings, read_settings, write_settings

    from alsql.scope import check_scope, labels_outside, set_scope

    check_settings(overlap, overlap_annotators, gold_rate)  # before touching the database
    if image_size:
        check_image_size(image_size)
    scope_given = {"kinds": kind or None, "sources_": source or None, "prefixes": prefix or None}
    check_scope(**scope_given)
    with write_transaction(get_engine()) as conn:
        proj = get_project(conn, project)
        if overlap is None and overlap_annotators is None and gold_rate is None:
            s = read_settings(conn, proj.project_id)
        else:
            s = write_settings(conn, proj.project_id, overlap=overlap, overlap_annotators=overlap_annotators,
                               gold_rate=gold_rate)
        if image_size is not None:
            set_project_image_size(conn, proj.project_id, image_size)
        size = project_image_size(conn, proj.project_id)
        scope = set_scope(conn, proj.project_id, clear=scope_clear, **scope_given)
        console.print(f"project [bold]{proj.name}[/bold]: overlap {s.overlap:g} "
                      f"(served to {s.overlap_annotators} annotators), gold rate {s.gold_rate:g}, image size "
                      + (str(size) if size else ("from the items (their median short side, at most "
                                           f"{SIZE_CAP['image']} for images, {SIZE_CAP['video']} for video)")))
        _print_scope(conn, scope)
        if scope_clear or any(v is not None for v in scope_given.values()):
            outside = labels_outside(conn, proj.project_id)
            if outside:
                console.print(f"{outside:,} labeled items are outside the scope: their labels are kept; they leave "
                              f"the pool and training_set until the scope takes them in again", markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(project_app, name="project")
