"""When ``alsql train`` continues an interrupted run's checkpoint, and the line that says so.

A checkpoint (``alsql.models.train``) carries the settings of the run that wrote it
(``settings_of``). A new run continues it when asked (``--resume``) or when every setting
matches; otherwise it starts fresh and names the settings that differ (``resume_plan``).
"""

from __future__ import annotations

from alsql.models.fit import TrainConfig

__all__ = ["settings_of", "resume_plan"]

# Settings that do not change what is learnt: a resume ignores them.
_NOT_SETTINGS = ("num_workers", "cache_mb", "max_minutes", "collapse_guard")  # collapse_guard: after training


def settings_of(cfg: TrainConfig, **extra) -> dict:
    """What a checkpoint must share with the run that resumes it without ``--resume``:
    every hyper-parameter except how the data is read, plus ``extra`` (grayscale, weights,
    init, head)."""
    return {k: v for k, v in cfg.as_params().items() if k not in _NOT_SETTINGS} | extra


def _flag(key: str, value) -> str:
    return f"--{key.replace('_', '-')} {'unset' if value is None else value}"


def resume_plan(state: dict | None, settings: dict, resume: bool | None) -> tuple[bool, str | None]:
    """``(resume?, the line that says why)`` for a checkpoint ``state`` (None: there is none).

    ``resume`` True (``--resume``): continue it whatever the settings; False: never; None:
    only when its recorded settings equal ``settings``. The line is None when there is no
    checkpoint and nothing was asked."""
    if state is None:
        return False, ("--resume: no checkpoint of an interrupted run with these labels; starting fresh"
                       if resume else None)
    done = f"epoch {int(state['epoch']) + 1}" + (f"/{state['epochs']}" if state.get("epochs") else "")
    if resume is False:
        return False, f"starting fresh: --no-resume (a checkpoint at {done} is overwritten)"
    old = state.get("settings")
    diff = [] if old is None else [k for k in sorted(set(old) | set(settings)) if old.get(k) != settings.get(k)]
    if resume:
        was = "" if old is not None and not diff else (
            " (made with " + ("settings not recorded" if old is None else ", ".join(
                f"{_flag(k, old.get(k))}, now {settings.get(k)}" for k in diff)) + ")")
        return True, f"resuming from {done}: --resume{was}"
    if old is None:
        return False, f"starting fresh: the checkpoint at {done} records no settings (--resume continues it)"
    if diff:
        return False, "starting fresh: the checkpoint was made with " + "; ".join(
            f"{_flag(k, old.get(k))}, now {settings.get(k)}" for k in diff)
    return True, f"resuming from {done}: settings match the interrupted run"
