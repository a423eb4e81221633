"""Projects and their classes: create, find, list.

Class ids are 0..n-1 in the order given, so a class id is also the index of the
model's output.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, func, insert, select

from alsql.errors import AlsqlError
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
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise AlsqlError(f"--classes {text!r}: repeated class names {', '.join(dupes)}")
    return names


def create_project(
    conn: Connection, name: str, class_names: list[str], description: str | None = None
) -> Project:
    """Create a project with its classes (keys 1..9, 0, then letters)."""
    name = name.strip()
    if not name:
        raise AlsqlError("project name: expected a non-empty name")
    if not class_names:
        raise AlsqlError(f"project {name!r}: expected at least one class")
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


def get_project(conn: Connection, name_or_id: str | int) -> Project:
    """The project named (or numbered) ``name_or_id``."""
    q = select(projects)
    if isinstance(name_or_id, int) or (isinstance(name_or_id, str) and name_or_id.isdigit()):
        q = q.where(projects.c.project_id == int(name_or_id))
    else:
        q = q.where(projects.c.name == name_or_id)
    row = conn.execute(q).first()
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
