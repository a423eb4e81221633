"""The steps (ingest, train, infer, select, marts, drift) as recorded runs, and event triggers."""
