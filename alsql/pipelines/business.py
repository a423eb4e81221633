"""The analysts' own tables that the join marts read, as ``alsql marts build`` names them.

Each kind (``gis_accidents``, ``warranty_claims``, ``maintenance_logs``) is named by
an option of ``alsql marts build`` (``--gis-accidents``), else by the environment
variable ``ALSQL_<KIND>_TABLE``, as ``TABLE``, ``SCHEMA.TABLE`` or, on SQL Server,
``DATABASE.SCHEMA.TABLE``. The name becomes the dbt var ``<kind>_table``, which the
dbt source ``business_<kind>`` splits into database, schema and identifier (quoted by
dbt). A kind left unnamed reads the packaged demo records, which join only the
projects named by the var ``demo_projects`` (none by default): its mart is empty for
every other project, and :func:`unset_warnings` says so.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

from sqlalchemy.engine import URL

from alsql.db import normalize_url
from alsql.errors import AlsqlError

__all__ = ["KINDS", "MARTS", "OPTIONS", "env_name", "parse_table_name", "business_vars", "cli_vars",
           "unset_warnings"]

KINDS = ("gis_accidents", "warranty_claims", "maintenance_logs")
# The join mart that reads each kind.
MARTS = {"gis_accidents": "intersection_safety", "warranty_claims": "defect_warranty",
         "maintenance_logs": "maintenance_risk"}
OPTIONS = {kind: "--" + kind.replace("_", "-") for kind in KINDS}
_PART = re.compile(r"^[A-Za-z_][A-Za-z0-9_$-]*$")


def env_name(kind: str) -> str:
    """The environment variable naming ``kind``'s table: ``ALSQL_GIS_ACCIDENTS_TABLE``."""
    return f"ALSQL_{kind.upper()}_TABLE"


def parse_table_name(value: str, backend: str, what: str) -> list[str]:
    """``value`` split into its parts (``[table]``, ``[schema, table]`` or, on SQL Server
    (``backend`` ``mssql``), ``[database, schema, table]``); ``what`` names the input in
    the error raised for anything else."""
    parts = value.strip().split(".")
    most = 3 if backend == "mssql" else 2
    shape = "TABLE or SCHEMA.TABLE" + (" or DATABASE.SCHEMA.TABLE" if most == 3 else "")
    if not 1 <= len(parts) <= most or not all(_PART.match(p) for p in parts):
        raise AlsqlError(f"{what} {value!r}: expected {shape}, each part a name of letters, digits, _, $ or - "
                         f"starting with a letter or _")
    return parts


def business_vars(url: str | URL, named: Mapping[str, str | None] | None = None,
                  environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The dbt vars for the business tables named in ``named`` (kind -> name, e.g. from the
    CLI options), else in ``ALSQL_<KIND>_TABLE``; each name checked by :func:`parse_table_name`."""
    backend = normalize_url(url).get_backend_name()
    environ = os.environ if environ is None else environ
    out = {}
    for kind in KINDS:
        value, what = (named or {}).get(kind), OPTIONS[kind]
        if not value:
            value, what = environ.get(env_name(kind)), env_name(kind)
        if value:
            out[f"{kind}_table"] = ".".join(parse_table_name(value, backend, what))
    return out


def cli_vars(text: str | None) -> dict:
    """``--vars`` of ``alsql marts build``: a YAML mapping, as dbt's own ``--vars`` takes."""
    import yaml

    if not text:
        return {}
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise AlsqlError(f"--vars {text!r}: not YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise AlsqlError(f"--vars {text!r}: expected a YAML mapping, e.g. '{{demo_projects: [traffic]}}'")
    return value


def unset_warnings(variables: Mapping[str, object], built: Iterable[str],
                   environ: Mapping[str, str] | None = None) -> list[str]:
    """One line per join mart in ``built`` whose business table is named by neither
    ``variables`` (the dbt vars) nor the environment: what the mart holds, and how to name
    the table."""
    environ = os.environ if environ is None else environ
    built = set(built)
    demo = variables.get("demo_projects") or []
    demo = [demo] if isinstance(demo, str) else [str(p) for p in demo]
    lines = []
    for kind in KINDS:
        if MARTS[kind] not in built or variables.get(f"{kind}_table") or environ.get(env_name(kind)):
            continue
        holds = f"holds the demo records of projects {', '.join(demo)} only" if demo else "is empty"
        lines.append(f"{MARTS[kind]} {holds}: no {kind.replace('_', ' ')} table is named ({OPTIONS[kind]} "
                     f"[SCHEMA.]TABLE or {env_name(kind)}); the packaged demo records join only the projects "
                     f"of var demo_projects")
    return lines
