"""Worked scenarios on generated data, each with a known answer the marts should find.

- ``traffic``: top-down videos of intersections per camera, GIS accident records whose
  rate depends on the intersection type (``traffic_data``).
- ``maintenance``: machine sound with abnormal stretches, maintenance logs whose
  failures follow those stretches (``maintenance_data``).

``difficulty`` sets how hard the media are to read (easy, default, hard or a level in
[0, 1]). ``run`` ingests the media, runs active-learning rounds with an oracle, loads
the business table as the user's own SQL table (``tables``), builds the join mart and
the answer marts, and reads the naive, classical and PPI answers beside the truth
(``answers.verdict``).
"""
