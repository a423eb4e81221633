"""Azure Blob store against Azurite: put/open/list, missing blobs, ingest and a dataset from az://."""

from __future__ import annotations

import io
import uuid

import pytest
from PIL import Image
from sqlalchemy import select

from alsql.errors import AlsqlError
from alsql.loaders.datasets import SqlImageDataset
from alsql.loaders.ingest import ingest
from alsql.stores import BlobMissing, store_for
from alsql.schema import items
from alsql.stores.azure import AzureBlobStore, split_uri
from tests.azurite import azurite  # noqa: F401 - the fixture

pytestmark = pytest.mark.azure


def _png(v: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (6, 6), color=(v, 0, 0)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def az_env(azurite, monkeypatch):
    """Connection string in the environment and a fresh container name."""
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite)
    monkeypatch.delenv("ALSQL_AZURE_CONNECTION_STRING", raising=False)
    from alsql import stores

    stores._CACHE.pop("az", None)  # a fresh store reads the new environment
    yield f"c{uuid.uuid4().hex[:12]}"
    stores._CACHE.pop("az", None)


def test_put_open_list_and_missing(az_env):
    store = store_for(f"az://{az_env}/x")
    assert isinstance(store, AzureBlobStore)
    store.put(f"az://{az_env}/imgs/b.png", b"bb")
    store.put(f"az://{az_env}/imgs/a.png", b"aa")
    store.put(f"az://{az_env}/imgsX/c.png", b"cc")
    assert store.open(f"az://{az_env}/imgs/a.png") == b"aa"
    assert list(store.list(f"az://{az_env}/imgs")) == [f"az://{az_env}/imgs/a.png", f"az://{az_env}/imgs/b.png"]
    assert len(list(store.list(f"az://{az_env}"))) == 3
    with pytest.raises(BlobMissing):
        store.open(f"az://{az_env}/imgs/nope.png")
    with pytest.raises(AlsqlError, match="does not exist"):
        list(store.list("az://nosuchcontainer1/x"))


def test_uri_and_credentials_errors(monkeypatch):
    assert split_uri("az://c/a/b.png") == ("c", "a/b.png")
    with pytest.raises(AlsqlError, match="expected az://container/path"):
        split_uri("s3://c/a")
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    monkeypatch.delenv("AZURE_STORAGE_ACCOUNT_URL", raising=False)
    from alsql.config import Settings, set_settings

    set_settings(Settings(azure_connection_string=None, azure_account_url=None))
    try:
        with pytest.raises(AlsqlError, match="no Azure credentials"):
            AzureBlobStore().open("az://c/a.png")
    finally:
        set_settings(None)


def test_ingest_and_dataset_from_azure(az_env, sqlite_url, tmp_path):
    from alsql.catalog import create_project
    from alsql.db import make_engine, write_transaction

    store = store_for(f"az://{az_env}")
    for i in range(20):
        store.put(f"az://{az_env}/set/{i:03d}.png", _png(i * 10))
    store.put(f"az://{az_env}/set/bad.png", b"garbage")
    engine = make_engine(sqlite_url)
    with write_transaction(engine) as conn:
        pid = create_project(conn, "az", ["a", "b"]).project_id
    report = ingest(engine, f"az://{az_env}/set")
    assert (report.new, report.corrupt) == (21, 1)
    # one blob vanishes after ingest: the dataset records it missing and goes on
    from azure.storage.blob import BlobServiceClient
    import os

    BlobServiceClient.from_connection_string(os.environ["AZURE_STORAGE_CONNECTION_STRING"]).get_blob_client(
        az_env, "set/005.png").delete_blob()
    ds = SqlImageDataset(sqlite_url, pid, view="unlabeled_pool", fetch_workers=8)
    got = list(ds)
    assert len(got) == 19 and all(x.shape == (3, 6, 6) for x, _, _ in got)
    with engine.connect() as conn:
        status = dict(conn.execute(select(items.c.uri, items.c.status)).all())
    assert status[f"az://{az_env}/set/005.png"] == "missing"
    assert status[f"az://{az_env}/set/bad.png"] == "corrupt"
    engine.dispose()


def test_size_range_and_bounded_open(az_env):
    from alsql.stores import BlobTooLarge, read_capped

    store = store_for(f"az://{az_env}/x")
    uri = f"az://{az_env}/r/blob.bin"
    store.put(uri, bytes(range(200)))
    store.put(f"az://{az_env}/r/empty.bin", b"")
    assert store.size(uri) == 200
    assert store.read_range(uri, 10, 5) == bytes([10, 11, 12, 13, 14])
    assert store.read_range(uri, 195, 50) == bytes(range(195, 200))
    assert store.read_range(uri, 300, 5) == b""
    assert store.open(uri, max_bytes=200) == bytes(range(200))
    assert store.open(f"az://{az_env}/r/empty.bin", max_bytes=10) == b""
    with pytest.raises(BlobTooLarge, match="200 bytes, over the limit of 100 bytes"):
        store.open(uri, max_bytes=100)
    with pytest.raises(BlobTooLarge):
        read_capped(store, uri, 199)
    with pytest.raises(BlobMissing):
        store.size(f"az://{az_env}/r/nope.bin")
    with pytest.raises(BlobMissing):
        store.read_range(f"az://{az_env}/r/nope.bin", 0, 4)
