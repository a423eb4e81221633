"""Pretraining benchmark: SimCLR throughput and peak memory through the SQL path as the pool grows.

Two SQLite databases are made: one whose pool holds ``--items`` N images and one with
10 N (16x16 greyscale PNGs: scikit-learn's digits, shifted and noised, ingested by
``alsql ingest``). On each, ``pretrain_project`` (what ``alsql pretrain`` runs: every ok
item streamed from SQL through the paged dataset, the network of the project, the
encoder recorded as a model version) runs the same number of steps in a fresh process,
``--repeats`` times; reported are the medians of

- items/s: items trained on per second of pretraining (the command's own clock);
- peak RSS: VmHWM of that process (imports, model, loader pages, batches in flight).

Goal: peak RSS flat as the pool grows tenfold (the pool is streamed, never held).

Baseline in the same run, on the same files: the pool decoded into one in-memory tensor
(PIL, the same resize) and pretrained by ``pretrain_tensors`` for the same steps: its
throughput is the ceiling of what streaming from SQL costs, and its memory grows with
the pool.

GPU: when CUDA is available the SQL path runs again on the GPU with AMP (float16) at the
10 N pool, reporting items/s and peak GPU memory; otherwise the report says "no GPU".

Quality (``--quality``, or ``--quality-only`` to keep the throughput figures of the
report and add only these): what the pretraining defaults are measured by. For each
setting and seed an encoder is pretrained in memory on the label-efficiency benchmark's
pool (its datasets and splits) and probed: a logistic regression on the frozen ``embed()``
features (L2-normalised, C = 10) trained on a few random labels (3 draws, every class
present) and scored on the test split, and the 1-nearest-neighbour accuracy over the
whole pool. Digits: the former defaults (300 steps at 1e-3, rotation 10 degrees) against
1,500 steps at 1e-3, the defaults (1,500 steps as ``--min-steps`` gives this pool, 1e-2,
20 degrees), and the defaults at 10 degrees. Maintenance sounds (200 steps): two
frequency and two time masks on the former views (a 15 % time shift with the gap filled
with the clip's minimum, gain +-1) and on the default views (a circular shift of up to half
the clip, a pitch shift of one mel band, gain +-0.5), against the views alone, at 1e-3;
the default views at 1e-2 and for 1,500 steps (the former ``--min-steps`` of every kind;
sounds now default to 200, ``alsql.models.pretrain.default_min_steps``).

    python benchmarks/pretrain.py [--items 2000] [--steps 30] [--batch-size 64] [--repeats 3] [--quick]
    python benchmarks/pretrain.py --quality-only [--quality-seeds 3] [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPORT = Path(__file__).parent / "reports" / "pretrain.json"
SIDE = 16

CHILD = r"""
import json, sys, time
mode, url, folder, steps, batch, device, amp, art = sys.argv[1:9]
steps, batch = int(steps), int(batch)
amp = {"on": True, "off": False, "auto": None}[amp]
import torch
torch.set_num_threads(1)
from alsql.models.pretrain import PretrainConfig, pretrain_tensors
from alsql.models.pretrain_pool import pretrain_project
from alsql.db import make_engine

def hwm():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")) / 1024

base = hwm()
out = {"mode": mode, "rss_after_imports_mb": round(base, 1)}
if mode == "sql":
    engine = make_engine(url)
    cfg = PretrainConfig(epochs=100_000, max_steps=steps, batch_size=batch, image_size=16, seed=0, device=device,
                         amp=amp, checkpoint_every=1_000_000)
    res = pretrain_project(engine, "pool", cfg, grayscale=True, artifacts=art)
    out.update(items=res.items_seen, steps=res.steps, seconds=res.seconds)
    engine.dispose()
else:  # memory: decode the whole pool into one tensor first, then pretrain on it
    from pathlib import Path
    import numpy as np
    from PIL import Image
    from alsql.models.networks import build_network
    t0 = time.perf_counter()
    files = sorted(Path(folder).rglob("*.png"))
    x = torch.from_numpy(np.stack([np.asarray(Image.open(f).convert("L").resize((16, 16)), dtype=np.float32)
                                   for f in files]) / 255.0)[:, None]
    out["decode_seconds"] = round(time.perf_counter() - t0, 2)
    torch.manual_seed(0)
    net = build_network("cnn", 1, 1)
    t0 = time.perf_counter()
    pretrain_tensors(net, x, "image", steps=steps, batch_size=batch, seed=0, device=device, amp=amp)
    out.update(items=steps * min(batch, len(x)), steps=steps, seconds=time.perf_counter() - t0)
if device == "cuda":
    out["gpu_peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    out["gpu"] = torch.cuda.get_device_name(0)
out["items_per_s"] = round(out["items"] / out["seconds"], 1)
out["peak_rss_mb"] = round(hwm(), 1)
print(json.dumps(out))
"""


def write_pool(folder: Path, n: int, seed: int = 0) -> Path:
    """``n`` 16x16 greyscale PNGs: digits placed at a random offset, with noise (every file distinct)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits().images / 16.0
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = np.zeros((SIDE, SIDE))
        dy, dx = rng.integers(0, SIDE - 8 + 1, 2)
        img[dy:dy + 8, dx:dx + 8] = digits[i % len(digits)]
        img = np.clip(img + rng.normal(0, 0.05, img.shape), 0, 1)
        sub = folder / f"part-{i // 1000:03d}"
        sub.mkdir(exist_ok=True)
        Image.fromarray((img * 255).astype(np.uint8), mode="L").save(sub / f"{i:06d}.png")
    return folder


def make_db(root: Path, name: str, folder: Path) -> tuple[str, float]:
    from alsql.catalog import create_project
    from alsql.db import make_engine, write_transaction
    from alsql.loaders.ingest import ingest
    from alsql.migrations import upgrade

    url = f"sqlite:///{root / (name + '.db')}"
    upgrade(url)
    engine = make_engine(url)
    t0 = time.perf_counter()
    ingest(engine, str(folder))
    with write_transaction(engine) as conn:
        create_project(conn, "pool", [str(d) for d in range(10)], "pretraining benchmark pool")
    engine.dispose()
    return url, time.perf_counter() - t0


def child(mode: str, url: str, folder: Path, steps: int, batch: int, device: str, amp: str, art: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, mode, url, str(folder), str(steps), str(batch), device, amp,
                          str(art)], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{mode} pretraining on {url} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def median_of(runs: list[dict]) -> dict:
    keys = ("items_per_s", "peak_rss_mb", "rss_after_imports_mb", "seconds")
    med = {k: round(statistics.median(r[k] for r in runs), 1) for k in keys}
    med["items"] = runs[0]["items"]
    med["runs"] = runs
    return med


QUALITY = {  # name: (dataset, steps (None: as `alsql pretrain`), lr (None: default_lr), augmentation settings)
    "digits: former defaults (300 steps, lr 1e-3, 10 degrees)": ("digits", 300, 1e-3, {"rotate_degrees": 10}),
    "digits: 1,500 steps, lr 1e-3": ("digits", None, 1e-3, {}),
    "digits: defaults (1,500 steps, lr 1e-2, 20 degrees)": ("digits", None, None, {}),
    "digits: defaults at 10 degrees": ("digits", None, None, {"rotate_degrees": 10}),
    "maintenance: former views (15 % shift filled with the minimum, gain 1)": (
        "maintenance", 200, None, {"max_shift": 0.15, "roll": False, "freq_shift": 0, "gain": 1.0}),
    "maintenance: former views + masks (2 + 2)": (
        "maintenance", 200, None, {"max_shift": 0.15, "roll": False, "freq_shift": 0, "gain": 1.0,
                                   "freq_masks": 2, "time_masks": 2}),
    "maintenance: defaults (50 % circular shift, 1-band pitch, gain 0.5)": ("maintenance", 200, None, {}),
    "maintenance: defaults + masks (2 + 2)": ("maintenance", 200, None, {"freq_masks": 2, "time_masks": 2}),
    "maintenance: defaults, lr 1e-2": ("maintenance", 200, 1e-2, {}),
    "maintenance: defaults, 1,500 steps (the former --min-steps)": ("maintenance", 1500, None, {}),
}
PROBE_LABELS = {"digits": (20, 60, 100), "maintenance": (6, 12, 18)}
_QDATA: dict = {}


def quality_task(task: tuple[str, int]) -> dict:
    """One setting and seed: pretrain on the pool, then the probes."""
    import torch
    from sklearn.linear_model import LogisticRegression

    from alsql.media.augment import AudioAugment, ImageAugment
    from alsql.models.pretrain import pretrain_tensors

    torch.set_num_threads(1)
    name, seed = task
    dname, steps, lr, aug_kw = QUALITY[name]
    le, ds = _QDATA[dname]
    pool, test = le.split(ds.y.numpy(), seed, len(ds.classes), ds.rare, ds.longtail)
    steps = le.pretrain_steps(ds, len(pool)) if steps is None else steps
    aug = ImageAugment(**aug_kw) if ds.kind == "image" else AudioAugment(**aug_kw)
    torch.manual_seed(seed)
    net = ds.make_net()
    t0 = time.perf_counter()
    pretrain_tensors(net, ds.x[pool], ds.kind, steps=steps, batch_size=ds.pretrain_batch, seed=seed, lr=lr, aug=aug)
    secs = time.perf_counter() - t0
    net.eval()
    with torch.no_grad():
        fp, ft = net.embed(ds.x[pool]).numpy(), net.embed(ds.x[test]).numpy()
    fp /= np.linalg.norm(fp, axis=1, keepdims=True) + 1e-8
    ft /= np.linalg.norm(ft, axis=1, keepdims=True) + 1e-8
    yp, yt = ds.y.numpy()[pool], ds.y.numpy()[test]
    out = {"setting": name, "seed": seed, "steps": steps, "seconds": round(secs, 1),
           "knn1": float((yp[(ft @ fp.T).argmax(1)] == yt).mean())}
    rng = np.random.default_rng(seed)
    for n in PROBE_LABELS[dname]:
        accs = []
        for _ in range(3):
            idx = rng.choice(len(pool), n, replace=False)
            while len(set(yp[idx])) < len(ds.classes):
                idx = rng.choice(len(pool), n, replace=False)
            clf = LogisticRegression(C=10, max_iter=3000).fit(fp[idx], yp[idx])
            accs.append(float((clf.predict(ft) == yt).mean()))
        out[f"probe_{n}"] = float(np.mean(accs))
    return out


def quality(seeds: int, jobs: int, console) -> dict:
    import multiprocessing as mp

    sys.path.insert(0, str(Path(__file__).parent))
    import label_efficiency as le

    data = tempfile.TemporaryDirectory(prefix="alsql-pretrain-quality-")
    _QDATA["digits"] = (le, le.digits(False))
    _QDATA["maintenance"] = (le, le.maintenance(False, Path(data.name)))
    tasks = [(name, seed) for seed in range(seeds) for name in QUALITY]
    rows = []
    with mp.get_context("fork").Pool(max(1, jobs)) as pool:
        for r in pool.imap_unordered(quality_task, tasks):
            rows.append(r)
            console.print(f"{r['setting']:58s} seed {r['seed']}: " + ", ".join(
                f"{k} {v:.3f}" for k, v in r.items() if k.startswith(("probe", "knn"))) + f" ({r['seconds']} s)")
    data.cleanup()
    out = {}
    for name, (dname, *_rest) in QUALITY.items():
        mine = [r for r in rows if r["setting"] == name]
        keys = ["knn1"] + [f"probe_{n}" for n in PROBE_LABELS[dname]]
        out[name] = {"dataset": dname, "seeds": len(mine), "steps": mine[0]["steps"],
                     "seconds_median": float(np.median([r["seconds"] for r in mine])),
                     **{k: round(float(np.mean([r[k] for r in mine])), 4) for k in keys},
                     **{k + "_std": round(float(np.std([r[k] for r in mine])), 4) for k in keys}}
        console.print(f"{name:58s} " + ", ".join(f"{k} {out[name][k]:.3f}" for k in keys))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, default=2000, help="N: the small pool (the large one is 10 N)")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="N = 300, 10 steps, 1 repeat")
    ap.add_argument("--out", default=str(REPORT))
    ap.add_argument("--quality", action="store_true", help="add the encoder-quality probes of the defaults")
    ap.add_argument("--quality-only", action="store_true",
                    help="only the quality probes, merged into the report's other figures")
    ap.add_argument("--quality-seeds", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=2, help="worker processes of the quality probes")
    args = ap.parse_args()
    if args.quality or args.quality_only:
        from rich.console import Console as _C

        t0 = time.perf_counter()
        load = [round(v, 1) for v in __import__("os").getloadavg()]
        q = {"config": {"seeds": args.quality_seeds, "jobs": args.jobs, "torch_threads": 1,
                        "probe": "logistic regression (C=10) on L2-normalised frozen embed() features, "
                                 "3 random label draws; knn1: 1-nearest neighbour over the whole pool",
                        "load_average_at_start": load},
             "settings": quality(args.quality_seeds, args.jobs, _C(highlight=False, width=160))}
        q["seconds"] = round(time.perf_counter() - t0, 1)
        q["config"]["load_average_at_end"] = [round(v, 1) for v in __import__("os").getloadavg()]
        if args.quality_only:
            out = Path(args.out)
            report = json.loads(out.read_text()) if out.exists() else {}
            report["quality"] = q
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(report, indent=2))
            print(f"wrote {out} (quality)")
            return
        args.quality_result = q
    if args.quick:
        args.items, args.steps, args.repeats = 300, 10, 1
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, width=160)
    import torch

    t_all = time.perf_counter()
    report: dict = {"config": {"items": args.items, "steps": args.steps, "batch_size": args.batch_size,
                               "repeats": args.repeats, "image": f"{SIDE}x{SIDE} greyscale PNG", "network": "cnn",
                               "torch_threads": 1, "cpus": __import__("os").cpu_count(),
                               "python": platform.python_version(), "torch": torch.__version__,
                               "load_average_at_start": [round(v, 1) for v in __import__("os").getloadavg()]},
                    "cpu": {}, "baseline_memory": {}}
    with tempfile.TemporaryDirectory(prefix="alsql-pretrain-bench-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        small = write_pool(root / "small", args.items, seed=0)
        large = write_pool(root / "large", 10 * args.items, seed=1)
        console.print(f"wrote {args.items} + {10 * args.items} PNGs in {time.perf_counter() - t0:.1f} s")
        sizes = {}
        for name, folder, n in (("N", small, args.items), ("10N", large, 10 * args.items)):
            url, secs = make_db(root, name, folder)
            sizes[name] = (url, folder, n)
            console.print(f"pool {name}: {n} items ingested in {secs:.1f} s")
        for name, (url, folder, n) in sizes.items():
            for mode, bucket in (("sql", "cpu"), ("memory", "baseline_memory")):
                runs = [child(mode, url, folder, args.steps, args.batch_size, "cpu", "off", root / "art")
                        for _ in range(args.repeats)]
                bucket_rep = median_of(runs)
                bucket_rep["pool_items"] = n
                report[bucket][name] = bucket_rep
                console.print(f"{mode:6s} pool {name:3s} ({n} items): {bucket_rep['items_per_s']:.0f} items/s, "
                              f"peak RSS {bucket_rep['peak_rss_mb']:.0f} MB")
        if torch.cuda.is_available():
            url, folder, n = sizes["10N"]
            runs = [child("sql", url, folder, args.steps * 4, 256, "cuda", "on", root / "art")
                    for _ in range(args.repeats)]
            gpu = median_of(runs)
            gpu.update(pool_items=n, amp=True, batch_size=256, steps=args.steps * 4,
                       gpu=runs[0].get("gpu"),
                       gpu_peak_mb=round(statistics.median(r["gpu_peak_mb"] for r in runs), 1))
            report["gpu"] = gpu
        else:
            report["gpu"] = "no GPU"
    cpu, mem = report["cpu"], report["baseline_memory"]
    growth = cpu["10N"]["peak_rss_mb"] - cpu["N"]["peak_rss_mb"]
    report["rss_growth_mb_10x_pool"] = round(growth, 1)
    report["baseline_rss_growth_mb_10x_pool"] = round(mem["10N"]["peak_rss_mb"] - mem["N"]["peak_rss_mb"], 1)
    report["goal"] = {"text": "peak RSS of the SQL path flat (within 10 %) as the pool grows tenfold",
                      "met": growth <= 0.1 * cpu["N"]["peak_rss_mb"]}
    report["seconds"] = round(time.perf_counter() - t_all, 1)
    if getattr(args, "quality_result", None):
        report["quality"] = args.quality_result
    elif Path(args.out).exists():  # the encoder-quality probes of an earlier --quality-only run are kept
        kept = json.loads(Path(args.out).read_text()).get("quality")
        if kept:
            report["quality"] = kept
    report["config"]["load_average_at_end"] = [round(v, 1) for v in __import__("os").getloadavg()]

    tab = Table(title=f"SimCLR pretraining, {args.steps} steps of {args.batch_size}, 1 torch thread "
                      f"(medians of {args.repeats})", title_justify="left")
    for col in ("path", "pool items", "items/s", "peak RSS MB", "RSS after imports MB"):
        tab.add_column(col, justify="right" if col != "path" else "left")
    for label, bucket in (("SQL stream (alsql pretrain)", cpu), ("baseline: pool in memory", mem)):
        for name in ("N", "10N"):
            r = bucket[name]
            tab.add_row(label, f"{r['pool_items']:,}", f"{r['items_per_s']:.0f}", f"{r['peak_rss_mb']:.0f}",
                        f"{r['rss_after_imports_mb']:.0f}")
    if isinstance(report["gpu"], dict):
        g = report["gpu"]
        tab.add_row(f"GPU {g['gpu']} AMP, batch 256", f"{g['pool_items']:,}", f"{g['items_per_s']:.0f}",
                    f"{g['peak_rss_mb']:.0f} (GPU {g['gpu_peak_mb']:.0f})", f"{g['rss_after_imports_mb']:.0f}")
    console.print(tab)
    if not isinstance(report["gpu"], dict):
        console.print("GPU: no GPU")
    console.print(f"peak RSS growth, pool x10: SQL stream {growth:+.1f} MB, in-memory baseline "
                  f"{report['baseline_rss_growth_mb_10x_pool']:+.1f} MB; goal {'MET' if report['goal']['met'] else 'MISSED'}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
