"""Data in and out of SQL: blob stores, ingest, label import/export, datasets, writers."""
