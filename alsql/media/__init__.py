"""Media items: images, segments of video files, clips of sound files.

A video or sound file is one ``sources`` row; each fixed-length segment of it is an
``items`` row whose uri is a W3C Media Fragments URI (``<source uri>#t=10,12``) with
``source_id``, ``start_s``, ``end_s`` and ``rate`` (fps or sample rate) filled in.

API (what the loaders, the web app and the scenarios call):

- ``alsql.media.kinds``: ``VIDEO_EXTENSIONS``, ``AUDIO_EXTENSIONS``, ``kind_of(uri)``
  (``"image" | "video" | "audio" | None``), ``fragment_uri(source_uri, start, end)``,
  ``parse_fragment(uri) -> (source_uri, start, end)`` (start/end None without ``#t=``),
  ``tile(duration, segment, stride) -> [(start, end), ...]``, ``parse_seconds("2s")``,
  ``MediaSpec`` (decode settings of a model: kind, image_size, frames, sample_rate,
  n_mels, seconds) and ``decode_item(uri, spec) -> torch.Tensor``.
- ``alsql.media.rangeio``: ``open_media(uri)`` -> a seekable binary file the caller closes:
  a local file opened confined (``alsql.stores.confined.open_regular``: a regular file
  reached through no link, never waiting on a FIFO; ``MediaError`` when refused), else a
  ``RangeFile`` that reads the blob by ranges through ``alsql.stores``; ``media_input(uri)``
  the same as a ``with`` block.

- ``alsql.media.video``: ``probe_video(uri) -> dict``, ``decode_video(uri, start, end,
  frames=8, size=64) -> (T, 3, H, W) float32 in [0, 1]``.
- ``alsql.media.audio``: ``probe_audio(uri) -> dict``, ``read_audio(uri, start, end,
  sample_rate) -> (samples,) float32 mono``, ``log_mel(wave, sample_rate, n_mels=64)
  -> (1, n_mels, frames)``, ``mel_filterbank``, ``resample``.
- ``alsql.loaders.media_rows``: ``decoded_rows(rows, spec, workers=1, on_bad=...)`` (what
  ``SqlImageDataset`` runs in each DataLoader worker for video / audio), ``is_media_uri``.
- ``alsql.media.training``: ``project_spec(url, project_id, image_size, grayscale)`` (the
  kind of a project's items and its decode settings); ``alsql.models.inputs.media_plan``
  makes the training choices from it (network per kind, channels, input size). A model's spec is kept in
  ``model_versions.params["media"]`` and its artifact meta; ``kinds.model_spec(url, model_id)``.
- ``alsql.models.networks``: ``AudioCNN`` (``audio_cnn``), ``VideoNet`` (``video_cnn``,
  ``video_resnet18``), ``arch_for_kind(arch, kind)``; same ``embed`` / ``head`` contract.
- ``alsql.loaders.ingest_media``: ``ingest_media(engine, prefix, uris, ...)`` (called
  by ``alsql.loaders.ingest.ingest`` for video and sound files).

Layers: ``alsql.media`` uses the base (``schema``, ``db``, ``stores``, ``config``) and
nothing above it; the loaders and models use it (``tests/test_layers.py`` checks).
"""

__all__: list[str] = []
