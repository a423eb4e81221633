"""Azure Blob storage, re-exported from ``alsql.stores.azure``. Kept for code that imports it here."""

from alsql.stores.azure import AzureBlobStore, split_uri  # noqa: F401
from alsql.stores.azure import __all__  # noqa: F401
