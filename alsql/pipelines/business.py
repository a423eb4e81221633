"""The analysts' own tables that the join marts read, as ``alsql marts build`` names them.

Each kind (``gis_accidents``, ``warranty_claims``, ``maintenance_logs``) is named by
an option of ``alsql marts build`` (``--gis-accidents``), else by the environment
variable ``ALSQL_<KIND>_TABLE``, as ``TABLE``, ``SCHEMA.TABLE`` or, on SQL Server,
``DATABASE.SCHEMA.TABLE``. The name becomes the dbt var ``<kind>_table``, which the
dbt source ``business_<kind>`` splits into database, schema and identifier (quoted by
dbt). A kind left unnamed reads the packaged demo records.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from sqlalchemy.engine import URL

from alsql.db import normalize_url
from alsql.errors import AlsqlError

__all__ = ["KINDS", "MARTS", "OPTIONS", "env_name", "parse_table_name", "business_vars"]

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

