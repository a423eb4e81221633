"""Projects and their classes: create, find, list.

Class ids are 0..n-1 in the order given, so a class id is also the index of the
model's output. Names follow ``alsql.names`` (a project name is never all digits),
so a reference is unambiguous: ASCII digits name an id, anything else a name.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, func, insert, select

from alsql.errors import AlsqlError
from alsql.names import check_class_name, check_project_name
from alsql.schema import classes, projects

__all__ = ["Project", "create_project", "get_project", "list_projects", "parse_classes"]


@dataclass(frozen=True)
class Project:
    project_id: int
    name: str
    description: str | None
    classes: tuple[str, ...]
    keys: tuple[str | None, ...]

    def class_id(self, name: str) -> int:
        try:
            return self.classes.index(name)
        except ValueError:
            raise AlsqlError(
                f"class {name!r} is not in project {self.name!r}; "
                f"expected one of: {', '.join(self.classes)}"
            ) from None


_KEYS = "1234567890qwertyuiopasdfghjklzxcvbnm"


def parse_classes(text: str) -> list[str]:
    """``"cat,dog, bird"`` -> ``["cat", "dog", "bird"]``, refusing blanks and repeats."""
    names = [c.strip() for c in text.split(",")]
    if not names or any(not n for n in names):
        raise AlsqlError(f"--classes {text!r}: expected a comma-separated list of names")
    names = [check_class_name(n) for n in names]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise AlsqlError(f"--classes {text!r}: repeated class names {', '.join(dupes)}")
    _refuse_case_twins(f"--classes {text!r}", names)
    return names


def _refuse_case_twins(where: str, names: list[str]) -> None:
    """AlsqlError naming both when two class names differ only in case (``A`` and ``a``): one
    key, one export cell and one analyst's GROUP BY on a case-insensitive collation each."""
    first: dict[str, str] = {}
    for n in names:
        other = first.setdefault(n.casefold(), n)
        if other != n:
            raise AlsqlError(f"{where}: classes {other!r} and {n!r} differ only in case; use one name")


def create_project(
    conn: Connection, name: str, class_names: list[str], description: str | None = None
) -> Project:
    """Create a project with its classes (keys 1..9, 0, then letters).

    Names are checked by ``alsql.names`` (AlsqlError before anything is written).
    """
    name = check_project_name(name)
    if not class_names:
        raise AlsqlError(f"project {name!r}: expected at least one class")
    class_names = [check_class_name(c) for c in class_names]
    dupes = sorted({n for n in class_names if class_names.count(n) > 1})
    if dupes:
        raise AlsqlError(f"project {name!r}: repeated class names {', '.join(dupes)}")
    _refuse_case_twins(f"project {name!r}", class_names)
    exists = conn.execute(select(projects.c.project_id).where(projects.c.name == name)).first()
    if exists:
        raise AlsqlError(f"project {name!r} already exists")
    project_id = conn.execute(
        insert(projects).values(name=name, description=description).returning(
            projects.c.project_id
        )
    ).scalar_one()
    conn.execute(
        insert(classes),
        [
            {
                "project_id": project_id,
                "class_id": i,
                "name": c,
                "key": _KEYS[i] if i < len(_KEYS) else None,
                "display_order": i,
            }
            for i, c in enumerate(class_names)
        ],
    )
    return get_project(conn, name)


def _project_row(conn: Connection, name_or_id: str | int):
    """The projects row that ``name_or_id`` names, or None.

    An int, or text of ASCII digits, is an id; other text is a name. A name made of
    digits cannot be created any more, but a database may hold one from before: when
    such a name and the id would pick different projects, AlsqlError says so.
    """
    if isinstance(name_or_id, bool) or not isinstance(name_or_id, (int, str)):
        raise AlsqlError(f"project {name_or_id!r}: expected a project name or id")
    if isinstance(name_or_id, int):
        return conn.execute(select(projects).where(projects.c.project_id == name_or_id)).first()
    ref = name_or_id.strip()
    by_name = conn.execute(select(projects).where(projects.c.name == ref)).first() if ref else None
    if not (ref.isascii() and ref.isdigit()):
        return by_name
    by_id = conn.execute(select(projects).where(projects.c.project_id == int(ref))).first()
    if by_id is not None and by_name is not None and by_id.project_id != by_name.project_id:
        raise AlsqlError(
            f"project {ref!r} is ambiguous: id {ref} is project {by_id.name!r}, and project id "
            f"{by_name.project_id} is named {ref!r}; use id {by_name.project_id} for the latter")
    return by_id if by_id is not None else by_name


def get_project(conn: Connection, name_or_id: str | int) -> Project:
    """The project named (or numbered) ``name_or_id``; AlsqlError listing the known ones."""
    row = _project_row(conn, name_or_id)
    if row is None:
        known = conn.execute(select(projects.c.name).order_by(projects.c.project_id)).scalars().all()
        raise AlsqlError(
            f"project {name_or_id!r} does not exist; known projects: "
            f"{', '.join(known) if known else '(none: create one with `alsql project create`)'}"
        )
    cls = conn.execute(
        select(classes.c.name, classes.c.key)
        .where(classes.c.project_id == row.project_id)
        .order_by(classes.c.class_id)
    ).all()
    return Project(
        row.project_id, row.name, row.description, tuple(c.name for c in cls), tuple(c.key for c in cls)
    )


def list_projects(conn: Connection) -> list[tuple[Project, int]]:
    """Every project with its label count."""
    from alsql.schema import current_labels

    counts = dict(
        conn.execute(
            select(current_labels.c.project_id, func.count()).group_by(current_labels.c.project_id)
        ).all()
    )
    names = conn.execute(select(projects.c.project_id).order_by(projects.c.project_id)).scalars()
    return [(get_project(conn, pid), counts.get(pid, 0)) for pid in list(names)]
