"""Azure Blob storage as a blob store: ``az://container/path/to/blob``.

Credentials, first found wins: ``settings.azure_connection_string``, the environment
variable ``AZURE_STORAGE_CONNECTION_STRING``, else ``settings.azure_account_url`` (or
``AZURE_STORAGE_ACCOUNT_URL``) with ``DefaultAzureCredential``. Clients are made per
process (a DataLoader fork gets its own) with a connection pool sized for many reads
in flight. A missing blob raises ``BlobMissing``; other service errors propagate for
the fetcher's retry logic (``alsql.loaders.fetch``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

from alsql.errors import AlsqlError
from alsql.stores import BlobMissing, BlobTooLarge, register_store

__all__ = ["AzureBlobStore", "split_uri"]

SCHEME = "az"


def split_uri(uri: str) -> tuple[str, str]:
    """``az://container/a/b.png`` -> ``("container", "a/b.png")``."""
    if not uri.startswith(f"{SCHEME}://"):
        raise AlsqlError(f"{uri!r} is not an Azure Blob URI (expected az://container/path)")
    container, _, name = uri[len(SCHEME) + 3 :].partition("/")
    if not container:
        raise AlsqlError(f"{uri!r} names no container (expected az://container/path)")
    return container, name


def _total_size(props) -> int | None:
    """The whole blob's size from a ranged answer's ``Content-Range: bytes a-b/total``."""
    content_range = getattr(props, "content_range", None) or ""
    total = content_range.rpartition("/")[2]
    return int(total) if total.isdigit() else None


class AzureBlobStore:
    """``open`` / ``size`` / ``read_range`` / ``put`` / ``list`` over Azure Blob containers."""

    def __init__(self, connection_string: str | None = None, account_url: str | None = None, pool_size: int = 64) -> None:
        self._conn_str, self._account_url, self._pool_size = connection_string, account_url, pool_size
        self._pid: int | None = None
        self._service = None
        self._lock = threading.Lock()

    def _client(self):
        if self._service is not None and self._pid == os.getpid():
            return self._service
        with self._lock:
            if self._service is None or self._pid != os.getpid():
                self._service, self._pid = self._connect(), os.getpid()
        return self._service

    def _connect(self):
        import requests
        from azure.core.pipeline.transport import RequestsTransport
        from azure.storage.blob import BlobServiceClient

        from alsql.config import get_settings

        settings = get_settings()
        session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=8, pool_maxsize=self._pool_size)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        transport = RequestsTransport(session=session, session_owner=False)
        conn_str = self._conn_str or settings.azure_connection_string or os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
        if conn_str:
            return BlobServiceClient.from_connection_string(conn_str, transport=transport)
        url = self._account_url or settings.azure_account_url or os.environ.get("AZURE_STORAGE_ACCOUNT_URL")
        if not url:
            raise AlsqlError(
                "no Azure credentials: set ALSQL_AZURE_CONNECTION_STRING (or AZURE_STORAGE_CONNECTION_STRING), "
                "or ALSQL_AZURE_ACCOUNT_URL for DefaultAzureCredential"
            )
        from azure.identity import DefaultAzureCredential

        return BlobServiceClient(account_url=url, credential=DefaultAzureCredential(), transport=transport)

    def open(self, uri: str, max_bytes: int | None = None) -> bytes:
        """The blob's bytes. With ``max_bytes``, a blob over the cap raises ``BlobTooLarge``
        after one ranged request of at most ``max_bytes + 1`` bytes (the blob's size comes
        with that answer), so nothing past the cap is downloaded."""
        from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

        container, name = split_uri(uri)
        try:
            blob = self._client().get_blob_client(container, name)
            if max_bytes is None:
                return blob.download_blob(max_concurrency=1).readall()
            stream = blob.download_blob(offset=0, length=max_bytes + 1, max_concurrency=1)
            size = _total_size(stream.properties)
            if size is not None and size > max_bytes:
                raise BlobTooLarge(uri, size, max_bytes)
            data = stream.readall()
        except ResourceNotFoundError as exc:
            raise BlobMissing(uri) from exc
        except HttpResponseError as exc:
            if exc.status_code == 416:  # a range on an empty blob
                return b""
            raise
        if len(data) > max_bytes:
            raise BlobTooLarge(uri, None, max_bytes)
        return data

    def size(self, uri: str) -> int:
        """The blob's length in bytes (one properties request)."""
        from azure.core.exceptions import ResourceNotFoundError

        container, name = split_uri(uri)
        try:
            return int(self._client().get_blob_client(container, name).get_blob_properties().size)
        except ResourceNotFoundError as exc:
            raise BlobMissing(uri) from exc

    def read_range(self, uri: str, start: int, length: int) -> bytes:
        """``length`` bytes from offset ``start`` by one ranged download (shorter at the end)."""
        from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

        if start < 0 or length < 0:
            raise AlsqlError(f"{uri}: bad range start={start} length={length}")
        if length == 0:
            return b""
        container, name = split_uri(uri)
        try:
            blob = self._client().get_blob_client(container, name)
            return blob.download_blob(offset=start, length=length, max_concurrency=1).readall()
        except ResourceNotFoundError as exc:
            raise BlobMissing(uri) from exc
        except HttpResponseError as exc:
            if exc.status_code == 416:  # start at or past the end
                return b""
            raise

    def put(self, uri: str, data: bytes) -> None:
        from azure.core.exceptions import ResourceExistsError

        container, name = split_uri(uri)
        cc = self._client().get_container_client(container)
        try:
            cc.create_container()
        except ResourceExistsError:
            pass
        cc.upload_blob(name, data, overwrite=True)

    def list(self, prefix: str) -> Iterator[str]:
        """Blob URIs under ``prefix`` (a container or a name prefix), in name order."""
        from azure.core.exceptions import ResourceNotFoundError

        container, name = split_uri(prefix)
        if name and not name.endswith("/"):
            name += "/"  # a folder-like prefix: az://c/a must not match az://c/ab.png
        cc = self._client().get_container_client(container)
        try:
            for blob in cc.list_blobs(name_starts_with=name or None):
                yield f"{SCHEME}://{container}/{blob.name}"
        except ResourceNotFoundError:
            raise AlsqlError(f"{prefix!r}: container {container!r} does not exist") from None


register_store(SCHEME, AzureBlobStore)
