"""Pretrained encoders as model versions, and how ``alsql train`` starts from one.

An encoder (``alsql pretrain``) is a ``model_versions`` row with ``status = 'encoder'``
(no migration: the column exists, and every "latest model" query asks for
``status = 'ready'``, so selection, inference, the web app and the watch rules never take
an encoder for a classifier), ``architecture = '<arch>+simclr'`` (``arch`` the network
for the project's media kind, e.g. ``cnn``, ``audio_cnn``, ``video_cnn``),
``label_count`` NULL and ``params.kind = 'encoder'``. Its artifact holds the full network's
``state_dict`` (the classification head as initialised, never trained), the projection
head and ``meta`` (arch, in_channels, image_size, grayscale, media).

How ``alsql train --head auto`` starts: measured on the labels (``alsql.models.choose``:
a linear head on the frozen encoder, fine-tuning, and, under ``--init auto``, random weights,
compared by held-out balanced accuracy, recorded in ``params["init"]["choice"]``, with a
warning when the encoder's probe is no better than a random network's). The fixed rule below
(``choose_head``) decides only when the labels are not held in memory (over ``TrainConfig.cache_mb``)
or under torchrun. Measured against it in ``benchmarks/head_vs_finetune.py`` (5 seeds): on
digits the head leads fine-tuning at every budget from 20 to 400 labels and fine-tuning never
leads by more than a standard deviation on digits, traffic or maintenance, so this rule's
switch at 15 per class costs a little (0.979 vs 0.986 at 200 labels) and the measured choice
keeps the head there; it picks the best arm in 100 % of digits rounds against this rule's 97 %
(details in ``alsql.models.choose``).

The fixed rule (``choose_head``): with fewer than ``FROZEN_BELOW_PER_CLASS`` (15) labels per
class on average, the encoder is frozen and only the linear head (dropout + ``fc``) is
trained on its features (few labels cannot move a whole network without overfitting; the
pretrained features are kept as they are), at ``FROZEN_LR_FACTOR`` (10) times the learning
rate (``head_config``); from 15 per class on, the whole network is fine-tuned from the
encoder at the given rate. Measured on digits (4 seeds, random labels, the same encoder):
the frozen head leads fine-tuning by 2.3 points at 6 per class and 0.2 at 10; fine-tuning
leads by 0.2 at 25 and 0.4 at 40 per class. At 15 per class the two datasets disagree
(digits: frozen +0.7; the maintenance sounds, 30 labels for 2 classes, 2 seeds: fine-tuning
reaches 1.000 where the frozen head stays at 0.991), and fine-tuning is the safer side when
the encoder's features miss the cue.
"""

from __future__ import annotations

from sqlalchemy import Connection, select

from alsql.errors import AlsqlError
from alsql.schema import model_versions

__all__ = ["ENCODER_STATUS", "SUFFIX", "FROZEN_BELOW_PER_CLASS", "INITS", "HEADS", "encoder_arch",
           "FROZEN_LR_FACTOR", "encoder_layout", "latest_encoder", "load_encoder_weights", "start_from_encoder", "choose_head",
           "head_config", "resolve_init", "encoder_learned", "skip_unlearned", "learned_line"]

ENCODER_STATUS = "encoder"
SUFFIX = "+simclr"
FROZEN_BELOW_PER_CLASS = 15
FROZEN_LR_FACTOR = 10.0
INITS = ("auto", "pretrained", "random")
HEADS = ("auto", "frozen", "finetune")


def encoder_arch(arch: str) -> str:
    """The ``architecture`` recorded for an encoder of network ``arch``."""
    return f"{arch}{SUFFIX}"


def latest_encoder(conn: Connection, project_id: int, arch: str | None = None):
    """The project's newest ``alsql pretrain`` encoder row (of network ``arch`` when given), or None.

    Foundation encoders (``alsql embed --encoder hf:...``, architecture the spec) are not
    pretrained encoders: they are never returned here."""
    mv = model_versions.c
    q = select(model_versions).where(mv.project_id == project_id, mv.status == ENCODER_STATUS)
    if arch is not None:
        q = q.where(mv.architecture == encoder_arch(arch))
    else:
        q = q.where(mv.architecture.endswith(SUFFIX, autoescape=True))
    return conn.execute(q.order_by(mv.model_id.desc()).limit(1)).first()


def encoder_layout(row, default: dict | None = None) -> dict:
    """The pooling layout (``alsql.models.networks.LAYOUT``) a network started from the encoder
    ``row`` must have: the one it was pretrained with (``params["layout"]``; encoders made
    before layouts were recorded: ``LEGACY_LAYOUT``), or ``default`` (``layout_for`` the
    project's input; None: ``LAYOUT``) when ``row`` is None."""
    from alsql.models.networks import LAYOUT, LEGACY_LAYOUT

    if row is None:
        return dict(default or LAYOUT)
    return dict((row.params or {}).get("layout") or LEGACY_LAYOUT)


def load_encoder_weights(net, row) -> list[str]:
    """Copy the encoder of ``row`` (a model_versions row) into ``net``; return the names loaded.

    The classification head (``fc``) is left as initialised; every other tensor must
    match by name and shape, else the error names the encoder and the mismatch.
    """
    from alsql.models.artifacts import load_object

    obj = load_object(row.artifact_uri) if row.artifact_uri else None
    if obj is None:
        raise AlsqlError(f"encoder model {row.model_id}: artifact {row.artifact_uri} is missing from its store")
    return _load(net, obj["state_dict"], f"encoder model {row.model_id} ({row.architecture})")


def _load(net, state: dict, label: str) -> list[str]:
    from alsql.models.pretrain import head_parameter

    own = net.state_dict()
    state = {k: v for k, v in state.items() if not head_parameter(k)}
    bad = sorted(k for k, v in state.items() if k not in own or own[k].shape != v.shape)
    missing = sorted(k for k in own if not head_parameter(k) and k not in state)
    if bad or missing:
        raise AlsqlError(
            f"{label} does not fit this network: {len(bad)} tensor(s) differ ({', '.join(bad[:3])}), "
            f"{len(missing)} missing ({', '.join(missing[:3])}); pretrain again with the same --arch and "
            f"--grayscale, or train with --init random"
        )
    net.load_state_dict(state, strict=False)
    return sorted(state)


def start_from_encoder(net, state: dict, head: str = "finetune") -> list[str]:
    """Load an encoder ``state`` (``pretrain_tensors``' result, or an encoder artifact's
    ``state_dict``) into ``net``; ``head="frozen"`` then freezes all but the head.
    Returns the tensor names loaded. For in-memory training (``fit``) from an encoder."""
    if head not in ("frozen", "finetune"):
        raise AlsqlError(f"head {head!r}: expected frozen or finetune")
    names = _load(net, state, "encoder state")
    net.freeze_encoder(head == "frozen")
    return names


def head_config(cfg, mode: str | None):
    """The ``TrainConfig`` to fit with for a head ``mode``: a linear head on a frozen encoder
    learns at ``FROZEN_LR_FACTOR`` (10) times ``cfg.lr`` (a lone linear layer on fixed features
    is far from converged at the whole network's rate; measured on digits at 20-60 labels);
    fine-tuning and random starts keep ``cfg``."""
    import dataclasses

    if mode == "frozen":
        return dataclasses.replace(cfg, lr=cfg.lr * FROZEN_LR_FACTOR)
    return cfg


def choose_head(head: str, label_count: int, num_classes: int) -> tuple[str, str]:
    """``(frozen | finetune, why)`` for ``head`` (auto, frozen, finetune): the fixed rule, used
    where the choice cannot be measured (``alsql.models.choose.measure_sources`` returns None)."""
    if head not in HEADS:
        raise AlsqlError(f"--head {head!r}: expected one of {', '.join(HEADS)}")
    per_class = label_count / max(1, num_classes)
    if head != "auto":
        return head, f"--head {head}"
    if per_class < FROZEN_BELOW_PER_CLASS:
        return "frozen", (f"{label_count} labels for {num_classes} classes ({per_class:.1f} per class) is under "
                          f"{FROZEN_BELOW_PER_CLASS} per class: a linear head on the frozen encoder")
    return "finetune", (f"{label_count} labels for {num_classes} classes ({per_class:.1f} per class): "
                        f"the whole network fine-tuned from the encoder")


def encoder_learned(row) -> tuple[bool | None, str]:
    """``alsql.models.pretrain.learned`` for an encoder's ``model_versions`` row: its final loss
    (the curve's last point) against chance over that point's batches
    (``last_point_batches`` of its pool, batch, steps, processes and curve spacing); None for an
    encoder that records no SimCLR loss."""
    from alsql.models.pretrain import last_point_batches, learned

    params, metrics = row.params or {}, row.metrics or {}
    if params.get("method") != "simclr" or not params.get("batch_size"):
        return None, "no contrastive loss recorded"
    batch = int(params["batch_size"])
    sizes = [batch]
    if params.get("pool_items") and params.get("steps"):
        sizes = last_point_batches(int(params["pool_items"]), batch, int(params["steps"]),
                                   int(params.get("world_size") or 1), int(params.get("log_every") or 10))
    ok, why = learned(metrics.get("final_loss"), sizes)
    return ok, f"encoder model {row.model_id} {'learned' if ok else 'did not learn'}: {why}"


def skip_unlearned(row, init: str, head: str = "auto") -> tuple[object | None, str | None]:
    """``(row to start from or None, why it did not learn or None)``: under ``init`` and ``head``
    auto an encoder of ``row`` that did not learn (``encoder_learned``) is left (random weights,
    as with no encoder); ``--init pretrained`` or an explicit ``--head`` keeps it (the user asked
    for it: training warns with the reason)."""
    if row is None:
        return None, None
    ok, why = encoder_learned(row)
    if ok is not False:
        return row, None
    return (None, f"--init auto: random weights, {why}") if init == "auto" and head == "auto" else (row, why)


def learned_line(row) -> str | None:
    """The sentence ``alsql pretrain`` (and the demo's pretraining) ends with: ``encoder_learned``,
    prefixed "warning:" when the encoder did not learn; None when no loss was recorded."""
    ok, why = encoder_learned(row)
    if ok is None:
        return None
    return why if ok else f"warning: {why}; alsql train --init auto will start from random weights"


def resolve_init(conn: Connection, project_id: int, init: str, arch: str, *, weights: str | None = None):
    """The encoder row to start from (or None for random weights) for ``--init``.

    ``auto``: the newest encoder of ``arch`` when there is one (and no ``--weights``);
    ``pretrained``: that encoder, an error when the project has none; ``random``: None.
    """
    if init not in INITS:
        raise AlsqlError(f"--init {init!r}: expected one of {', '.join(INITS)}")
    if init == "random" or (init == "auto" and weights):
        return None
    if init == "pretrained" and weights:
        raise AlsqlError("--init pretrained and --weights both give initial weights: pass one of them")
    row = latest_encoder(conn, project_id, arch)
    if row is None and init == "pretrained":
        other = latest_encoder(conn, project_id)
        hint = f" (its encoder {other.model_id} is a {other.architecture})" if other is not None else ""
        raise AlsqlError(f"--init pretrained: project {project_id} has no {encoder_arch(arch)} encoder{hint}; "
                         f"run `alsql pretrain --project {project_id} --arch {arch.split('_')[-1]}` first, "
                         f"or train with --init random")
    return row
