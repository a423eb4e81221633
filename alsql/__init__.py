"""alsql: active learning at scale on a SQL database."""

from alsql.errors import AlsqlError

__version__ = "0.1.0"
__all__ = ["AlsqlError", "__version__"]
