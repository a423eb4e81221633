"""``alsql watch``: event triggers that run the pipeline steps when they are due.

Rules come from ``[watch]`` in ``alsql.toml`` (``settings.watch``); defaults:

- queued runs (``runs.status = 'queued'``, e.g. the web app's "retrain now") are run;
- ``train`` when at least ``retrain_labels`` (50) annotations arrived since the newest
  model was trained (``annotations.annotation_id > model_versions.trained_on_annotation_id``);
- ``infer`` when ok items lack predictions of the newest model; after it, ``drift``
  (PSI against the previous model or the labels; an alert above ``drift_threshold``)
  and ``marts`` (``dbt build``, when ``marts`` is true and the marts module ships);
- ``select`` a new round of ``round_budget`` items by ``strategy`` (before the first
  model: TypiClust on the vectors of the project's encoder when it has stored ones, else
  random) when the queue (pending, still unlabeled items of open train rounds) is
  below ``queue_low``;
- ``embed`` when the project has an encoder with stored vectors (``alsql embed``) and ok items
  of its scope and kinds have none: only those are embedded, under the same encoder version;
- ``pretrain`` (self-supervised, before ``train`` in a tick) once the pool (ok items of the
  project's kind) first holds ``pretrain_items`` (10,000; 0 turns the rule off), and again
  whenever it holds ``pretrain_growth`` (2.0) times the items the newest encoder was
  pretrained on; params from ``pretrain`` (PretrainConfig fields, ``grayscale``, ``artifacts``).
  Encoders (``status = 'encoder'``) are never "the newest model" of the other rules.

Each due step is claimed with a step lease (``alsql.pipelines.leases``) and its
condition checked again under the lease, so several watchers never run the same step
twice. Every action is said (``say``) with its reason, and recorded as a run. With
``explain`` (``alsql watch --once``) every rule that is not due says how far it is from
firing ("train: 49 of 50 labels since model 3").
Other keys: ``interval`` (seconds between ticks), ``lease_seconds``, ``projects`` (names
or ids; default all), ``train`` (TrainConfig fields, ``grayscale``, ``artifacts``),
``infer`` (``batch_size``, ``device``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields

from sqlalchemy import Engine, func, select, update

from alsql.db import write_transaction
from alsql.errors import AlsqlError
from alsql.models.encoders import ENCODER_STATUS
from alsql.models.strategies import DEFAULT_STRATEGY
from alsql.pipelines.leases import step_lease, worker_id
from alsql.pipelines.runs import Run
from alsql.pipelines.steps import marts_available, run_step
from alsql.schema import annotations, items, model_versions, predictions, projects, round_items, rounds, runs
from alsql.schema.scope import in_scope

__all__ = ["WatchRules", "Watcher", "labels_since_model", "missing_predictions", "queue_size", "fmt_psi",
           "pool_since_encoder"]


@dataclass
class WatchRules:
    interval: float = 30.0
    retrain_labels: int = 50
    queue_low: int = 10
    round_budget: int = 50
    strategy: str = DEFAULT_STRATEGY  # the best measured rare-class seeker (benchmarks/rare_seeking.py)
    drift_threshold: float = 0.2
    marts: bool = True
    lease_seconds: int = 600
    projects: list | None = None
    train: dict = field(default_factory=dict)
    infer: dict = field(default_factory=dict)
    pretrain_items: int = 10_000
    pretrain_growth: float = 2.0
    pretrain: dict = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, m: dict | None) -> "WatchRules":
        """Rules from the ``[watch]`` table; unknown keys are refused by name."""
        m = dict(m or {})
        known = {f.name for f in fields(cls)}
        bad = sorted(set(m) - known)
        if bad:
            raise AlsqlError(f"[watch] {', '.join(bad)}: unknown rule; expected some of {', '.join(sorted(known))}")
        rules = cls(**m)
        if rules.pretrain_items < 0 or not rules.pretrain_growth > 1:
            raise AlsqlError(f"[watch] pretrain_items {rules.pretrain_items}, pretrain_growth "
                             f"{rules.pretrain_growth}: expected items >= 0 (0: off) and a growth factor above 1")
        return rules


def _newest_model(conn, project_id: int):
    """The newest classifier of the project (encoders from ``alsql pretrain`` are not models here)."""
    mv = model_versions.c
    return conn.execute(select(mv.model_id, mv.trained_on_annotation_id)
                        .where(mv.project_id == project_id, mv.status != ENCODER_STATUS)
                        .order_by(mv.model_id.desc()).limit(1)).first()


def pool_since_encoder(conn, project_id: int) -> tuple[int, int | None, int | None]:
    """``(ok items of the project's kind and scope now, items the newest encoder was pretrained on, its id)``."""
    from alsql.media.training import spec_on
    from alsql.models.encoders import latest_encoder
    from alsql.models.pretrain_pool import kind_filter

    kind = spec_on(conn, project_id, None, False).kind
    n = conn.execute(select(func.count()).select_from(items).where(items.c.status == "ok", kind_filter(kind),
                                                                    in_scope(project_id, items)))
    enc = latest_encoder(conn, project_id)
    if enc is None:
        return int(n.scalar_one()), None, None
    return int(n.scalar_one()), int((enc.params or {}).get("pool_items") or 0), int(enc.model_id)


def labels_since_model(conn, project_id: int) -> tuple[int, int | None]:
    """``(annotations newer than the newest model's, that model's id or None)``."""
    m = _newest_model(conn, project_id)
    q = select(func.count()).select_from(annotations).where(annotations.c.project_id == project_id)
    if m is not None and m.trained_on_annotation_id is not None:
        q = q.where(annotations.c.annotation_id > m.trained_on_annotation_id)
    return int(conn.execute(q).scalar_one()), (m.model_id if m else None)


def missing_predictions(conn, project_id: int) -> tuple[int, int | None]:
    """``(ok items of the project's scope without a prediction of the newest model, its id)``;
    ``(0, None)`` without a model."""
    m = _newest_model(conn, project_id)
    if m is None:
        return 0, None
    done = select(predictions.c.item_id).where(predictions.c.model_id == m.model_id,
                                               predictions.c.item_id == items.c.item_id).exists()
    n = conn.execute(select(func.count()).select_from(items)
                     .where(items.c.status == "ok", ~done, in_scope(project_id, items))).scalar_one()
    return int(n), m.model_id


def queue_size(conn, project_id: int) -> int:
    """Items still to label in the project's open train rounds: pending and with no label yet."""
    labeled = select(annotations.c.item_id).where(annotations.c.project_id == project_id,
                                                  annotations.c.item_id == round_items.c.item_id).exists()
    return int(conn.execute(
        select(func.count()).select_from(round_items.join(rounds, rounds.c.round_id == round_items.c.round_id))
        .where(rounds.c.project_id == project_id, rounds.c.status == "open", rounds.c.purpose == "train",
               round_items.c.status == "pending", ~labeled)
    ).scalar_one())


def fmt_psi(value) -> str:
    """A PSI for people: three decimals (``n/a`` when there was nothing to compare)."""
    return "n/a" if value is None else f"{float(value):.3f}"


class Watcher:
    """Evaluates the rules once per ``tick``; ``run_forever`` ticks every ``interval`` seconds.

    ``explain``: also say, for every rule that is not due, how far it is from firing.
    """

    def __init__(self, engine: Engine, rules: WatchRules | None = None, say: Callable[[str], None] = print,
                 explain: bool = False) -> None:
        self.engine, self.rules, self.say, self.explain = engine, rules or WatchRules(), say, explain
        self.me = worker_id()

    # -- helpers -----------------------------------------------------------------------------
    def _project_ids(self) -> list[tuple[int, str]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(projects.c.project_id, projects.c.name).order_by(projects.c.project_id)).all()
        want = self.rules.projects
        if want:
            keys = {str(w) for w in want}
            rows = [r for r in rows if str(r.project_id) in keys or r.name in keys]
        return [(int(r.project_id), r.name) for r in rows]

    def _due(self, check: Callable, project_id: int):
        with self.engine.connect() as conn:
            return check(conn, project_id)

    def _leased(self, step: str, project_id: int, name: str, check: Callable[[], str | None],
                params: dict, trigger: str | None = None) -> Run | None:
        """Claim ``step``, re-check ``check`` under the lease, run it; None when skipped."""
        with step_lease(self.engine, step, project_id, lease_seconds=self.rules.lease_seconds,
                        holder=self.me) as lease:
            if lease is None:
                self.say(f"[{name}] {step}: another watcher holds it; skipping")
                return None
            reason = check()
            if reason is None:
                self.say(f"[{name}] {step}: no longer due (done by another watcher)")
                return None
            self.say(f"[{name}] {step}: {reason}")
            run = run_step(self.engine, step, project_id, params, trigger=trigger or reason)
            self.say(f"[{name}] {step}: run {run.run_id} succeeded {run.metrics}")
            return run

    # -- rules ---------------------------------------------------------------------------------
    def _train_reason(self, project_id: int) -> str | None:
        n, model = self._due(labels_since_model, project_id)
        if n < self.rules.retrain_labels:
            return None
        since = f"model {model} was trained" if model else "the start (no model yet)"
        return f"{n} labels arrived since {since} (rule: >= {self.rules.retrain_labels})"

    def _pretrain_reason(self, project_id: int) -> str | None:
        r = self.rules
        if not r.pretrain_items:
            return None
        n, before, enc = self._due(pool_since_encoder, project_id)
        if enc is None:
            if n < r.pretrain_items:
                return None
            return f"the pool holds {n:,} items, no encoder yet (rule: pretrain at >= {r.pretrain_items:,})"
        if n < r.pretrain_growth * max(before, 1):
            return None
        return (f"the pool grew to {n:,} items, {n / max(before, 1):.1f}x the {before:,} encoder {enc} was "
                f"pretrained on (rule: >= {r.pretrain_growth:g}x)")

    def _infer_reason(self, project_id: int) -> str | None:
        n, model = self._due(missing_predictions, project_id)
        return f"{n} items lack predictions of model {model}" if n else None

    def _embed_reason(self, project_id: int) -> str | None:
        from alsql.models.embed import missing_vectors

        n, enc = self._due(missing_vectors, project_id)
        return f"{n} new items lack vectors of encoder {enc.model_id}" if n else None

    def _select_reason(self, project_id: int) -> str | None:
        n = self._due(queue_size, project_id)
        if n >= self.rules.queue_low:
            return None
        with self.engine.connect() as conn:
            pool = conn.execute(select(func.count()).select_from(items)
                                .where(items.c.status == "ok", in_scope(project_id, items))).scalar_one()
        return f"the queue holds {n} pending items (rule: < {self.rules.queue_low})" if pool else None

    def distances(self, project_id: int) -> list[str]:
        """How far each rule of the project is from firing, one phrase per rule not due."""
        r = self.rules
        out = []
        with self.engine.connect() as conn:
            n, model = labels_since_model(conn, project_id)
            missing, newest = missing_predictions(conn, project_id)
            queue = queue_size(conn, project_id)
            last_psi = conn.execute(
                select(runs.c.metrics).where(runs.c.project_id == project_id, runs.c.step == "drift",
                                             runs.c.status == "succeeded")
                .order_by(runs.c.run_id.desc()).limit(1)).scalar()
        if n < r.retrain_labels:
            since = f"since model {model} was trained" if model else "so far (no model yet)"
            out.append(f"train: {n} of {r.retrain_labels} labels {since}")
        if not missing:
            out.append(f"infer: every ok item has predictions of model {newest}" if newest
                       else "infer: waits for a first model")
        drift = f"drift: after each inference, alert above PSI {fmt_psi(r.drift_threshold)}"
        if last_psi and last_psi.get("psi") is not None:
            drift += f" (last: {fmt_psi(last_psi['psi'])} against {last_psi.get('against')})"
        out.append(drift)
        if queue >= r.queue_low:
            out.append(f"select: queue {queue} pending, a new round of {r.round_budget} when below {r.queue_low}")
        if not r.pretrain_items:
            out.append("pretrain: off (pretrain_items = 0)")
        elif self._pretrain_reason(project_id) is None:
            with self.engine.connect() as conn:
                pool, before, enc = pool_since_encoder(conn, project_id)
            if enc is None:
                out.append(f"pretrain: pool {pool:,} of {r.pretrain_items:,} items (first pretraining)")
            else:
                out.append(f"pretrain: pool {pool:,} items, encoder {enc} saw {before:,}; again at "
                           f"{int(-(-r.pretrain_growth * max(before, 1) // 1)):,} ({r.pretrain_growth:g}x)")
        return out

    def run_queued(self) -> list[Run]:
        """Run every queued run that this watcher claims first (status queued -> running)."""
        done = []
        with self.engine.connect() as conn:
            queued = conn.execute(select(runs.c.run_id, runs.c.step, runs.c.project_id, runs.c.params)
                                  .where(runs.c.status == "queued").order_by(runs.c.run_id)).all()
        for q in queued:
            with write_transaction(self.engine) as conn:
                got = conn.execute(update(runs).where(runs.c.run_id == q.run_id, runs.c.status == "queued")
                                   .values(status="running", worker=self.me)).rowcount
            if got != 1:
                continue
            self.say(f"run {q.run_id}: {q.step} was queued; running it")
            defaults = {"train": self.rules.train, "pretrain": self.rules.pretrain}.get(q.step, {})
            params = dict(defaults) | dict(q.params or {})
            try:
                done.append(run_step(self.engine, q.step, q.project_id, params, run_id=q.run_id))
            except Exception as exc:  # noqa: BLE001 - recorded as failed; the watcher goes on
                self.say(f"run {q.run_id}: {q.step} failed: {exc}")
        return done

    def tick(self) -> list[Run]:
        """Evaluate every rule once for every project; return the runs made."""
        made = self.run_queued()
        for pid, name in self._project_ids():
            try:
                made += self._tick_project(pid, name)
            except Exception as exc:  # noqa: BLE001 - recorded as a failed run; next project
                self.say(f"[{name}] step failed: {exc.__class__.__name__}: {exc}")
        return made

    def _tick_project(self, pid: int, name: str) -> list[Run]:
        made: list[Run] = []
        r = self.rules
        if self._pretrain_reason(pid):
            run = self._leased("pretrain", pid, name, lambda: self._pretrain_reason(pid), dict(r.pretrain))
            made += [run] if run else []
        if self._train_reason(pid):
            run = self._leased("train", pid, name, lambda: self._train_reason(pid), dict(r.train))
            made += [run] if run else []
        if self._embed_reason(pid):  # new items of a project that has stored encoder vectors: embed them
            from alsql.models.embed import current_encoder, step_params

            with self.engine.connect() as conn:
                params = step_params(current_encoder(conn, pid))
            run = self._leased("embed", pid, name, lambda: self._embed_reason(pid), params)
            made += [run] if run else []
        if self._infer_reason(pid):
            run = self._leased("infer", pid, name, lambda: self._infer_reason(pid), dict(r.infer))
            if run:
                made.append(run)
                mid = run.metrics.get("model_id")
                drift = run_step(self.engine, "drift", pid, {"model_id": mid, "threshold": r.drift_threshold},
                                 trigger=f"after infer run {run.run_id}")
                made.append(drift)
                psi = drift.metrics.get("psi")
                self.say(f"[{name}] drift: PSI {fmt_psi(psi)} against {drift.metrics.get('against')}"
                         + (" -> alert recorded" if drift.metrics.get("alert_id") else ""))
                if r.marts and marts_available():
                    self.say(f"[{name}] marts: rebuilding after new predictions of model {mid}")
                    made.append(run_step(self.engine, "marts", pid, {}, trigger=f"after infer run {run.run_id}"))
                elif r.marts:
                    self.say(f"[{name}] marts: skipped (alsql.pipelines.marts is not installed)")
        if self._select_reason(pid):
            from alsql.models.select import cold_start_encoder

            with self.engine.connect() as conn:
                has_model = _newest_model(conn, pid) is not None
                encoder = None if has_model else cold_start_encoder(conn, pid)
            strategy = r.strategy if has_model or encoder is not None else "random"
            if encoder is not None and strategy != "random":
                self.say(f"[{name}] cold start: TypiClust on encoder {encoder}'s vectors (no trained model yet)")
            run = self._leased("select", pid, name, lambda: self._select_reason(pid),
                               {"strategy": strategy, "budget": r.round_budget})
            made += [run] if run else []
        if self.explain:
            for phrase in self.distances(pid):
                self.say(f"[{name}] not due: {phrase}")
        return made

    def run_forever(self, once: bool = False, stop: Callable[[], bool] = lambda: False) -> None:
        """Tick, sleep ``interval``, repeat (``once``: one tick); ``stop()`` True ends the loop."""
        while True:
            made = self.tick()
            if not made:
                self.say("nothing due")
            if once or stop():
                return
            end = time.monotonic() + self.rules.interval
            while time.monotonic() < end and not stop():
                time.sleep(min(0.2, self.rules.interval))
