"""Blob stores, re-exported from ``alsql.stores`` (their home: a base package, so the media
decoders below the loaders read blobs through it too). Kept for code that imports them here."""

from alsql.stores import (  # noqa: F401 - the same objects, registry included
    _CACHE,
    _FACTORIES,
    BlobMissing,
    BlobRefused,
    BlobStore,
    BlobTooLarge,
    LocalStore,
    path_to_uri,
    read_capped,
    register_store,
    store_for,
    uri_to_path,
)
from alsql.stores import __all__  # noqa: F401
