"""Worked scenarios on generated data, each with a known answer the marts should find.

- ``traffic``: top-down videos of intersections per camera, GIS accident records whose
  rate depends on the intersection type (``traffic_data``).
- ``maintenance``: machine sound with abnormal stretches, maintenance logs whose
  failures follow those stretches (``maintenance_data``).

``run`` ingests the media, runs active-learning rounds with an oracle, loads the
business table as the user's own SQL table (``tables``), builds the join mart and
reads the analyst's answer from it.
"""
