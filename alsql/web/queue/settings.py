"""The project's quality settings (overlap, overlap annotators, gold rate) as the queue
reads them: kept per process for ``SETTINGS_TTL`` seconds, dropped at once by
``forget_settings``. Mixed into ``LabelQueue`` (its state: ``_lock``, ``_settings``)."""

from __future__ import annotations

import time

from sqlalchemy import Connection

from alsql.errors import AlsqlError
from alsql.quality import QualitySettings, read_settings
from alsql.web.queue.common import SETTINGS_TTL
from alsql.web.queue.statements import _SETTINGS_NONE

__all__ = ["QualitySettingsCache"]


class QualitySettingsCache:
    """The project's quality settings, cached per process."""

    def settings(self, conn: Connection, project_id: int) -> QualitySettings:
        """The project's quality settings, kept ``SETTINGS_TTL`` seconds (``forget_settings``
        drops them at once: the admin page calls it after a change)."""
        now = time.monotonic()
        with self._lock:
            hit = self._settings.get(project_id)
        if hit is not None and now - hit[1] < SETTINGS_TTL:
            return hit[0]
        try:
            value = read_settings(conn, project_id)
        except AlsqlError:
            value = _SETTINGS_NONE
        with self._lock:
            self._settings[project_id] = (value, now)
        return value

    def forget_settings(self, project_id: int | None = None) -> None:
        self._forget(self._settings, project_id)

    def _forget(self, cache: dict, project_id: int | None) -> None:
        """Drop ``project_id``'s entry of a per-project cache (every entry when None)."""
        with self._lock:
            if project_id is None:
                cache.clear()
            else:
                cache.pop(project_id, None)
