"""Learning from a few strokes (issue 16): strokes against full labels, active learning, and the
cost of the window's live preview.

    python benchmarks/sparse_labels.py [--minutes 5] [--seeds 3]
    python benchmarks/sparse_labels.py --active [--minutes 5] [--seeds 3]
    python benchmarks/sparse_labels.py --live-cost [--minutes 2]

The data is ../shared/devdata, split exactly as ``benchmarks/quality.py`` does (its
``build_devdata_split``: one tile of each of the five sources to test, the other 32 to train;
``--fixed-split three``: the first three sources, 3 to test and 10 to train, the split of the
active-learning curves in docs/sparse-labels.md).

**Strokes vs. full labels** (default): the same train split trained twice per seed with the
defaults a user gets (``TrainConfig(max_minutes=M, seed=s)``, nothing else set), once with the
full labels and once with simulated strokes only (the train labels removed, a stroke file
``train/scribble/NAME.png`` per tile), scored on the test split's full labels.

``--variant FIELD=JSON`` adds a third run per seed: the same strokes trained with that
TrainConfig field set (e.g. ``pseudo_labels=0.9``, self-training), reported with its share of
the full-label IoU beside the plain strokes'.

*How the strokes are simulated* (:func:`core.scribbles.simulate_strokes`): from each tile's true
mask, 12 straight strokes inside roofs (one per roof, largest roofs first, then more on the
largest) and 12 on the ground for every 256 x 256 px of the tile (a 512 px tile gets 48 and 48),
each about 24 px long in a random direction, 2 px in radius (5 px wide), started at a random
pixel at least 3 px inside its class and clipped to the class shrunk by 1 px, so a stroke never
crosses a roof edge (a user paints well inside). Roof and ground strokes take turns until 2 % of
the tile's pixels are labelled (``max_fraction=0.02``), so in practice every tile ends at about
2 %, half of it on roofs. (Until 2026-12-02 the counts were per tile and roofs went first: the
256 px tiles had their budget spent on roofs, 0.4 % of ground against 1.6 % of roof, and the
larger tiles of shanghai, rio and spacenet got 0.6 to 1.3 %.) The seed of tile ``i`` is
``1000 * seed + i``.

**Active learning** (``--active``): start from 2 fully labelled train tiles (the first two of a
seeded permutation) and add one tile at a time until 8, either in the window's "label next"
order (:func:`core.label_next.label_next_order` with
:data:`core.label_next.WINDOW_WEIGHTS`: the tile whose pixels the current model doubts most,
:func:`core.uncertainty.image_uncertainty` of its prediction, weighed by how typical its look is
of the pool) or in random order (``--orders`` adds the others of :data:`ORDERS`: ``doubt``
alone, the window's until 2026-12-03; ``novelty``, the doubt weighed by how new the tile looks
next to the labelled ones; ``density_novelty``, by both; each scored lower); after each
addition a model is trained from scratch for ``M`` minutes on the labelled tiles and its test
IoU recorded. Reports the IoU at 4 and 8 tiles (mean of the seeds) and saves the curves as
``docs/sparse_labels_active.png`` (drawn with Pillow).

**Clicks per roof** (``--clicks [--roofs N]``): on the demo scene (``core.synthetic.make_scene``,
2048 px, seed 0, what the window's demo is cut from), for the ``N`` (default 40) largest roofs of
its label: how many smart-select clicks (:func:`core.smart_select.smart_select` on the image
alone, no model) reach IoU > 0.8 with the roof -- each click at the deepest pixel of the roof
not yet selected, Shift+click style (the proposals add up), at most 10 -- against the polygon
tool's corner count: the fewest corners of the roof's outline simplified (Douglas-Peucker,
shapely) whose filled polygon (:func:`core.annotate.fill_polygon`) reaches IoU > 0.8.

**Live-preview cost** (``--live-cost``): one training run of ``M`` minutes with the default
recipe, run twice with the same seed: once plain, once with ``train(on_weights=...)`` handing the
weights to a background thread that predicts a 512 px tile with them, at most every 15 s (what
the window does, :mod:`rooftop_gui.active_learning`); ``--repeats`` pairs, plain and live
alternating so that a change of the machine's load hits both. Reports samples per minute of
both, the relative loss, and the previews' own time as a share of the run (the cost without the
noise of other work on the machine).

Prints ONE JSON object on stdout; progress goes to stderr. When the devdata folder is absent it
says so and exits 0. The full runs are CPU-heavy (hours on 2 cores):
``--minutes 5 --seeds 3`` trains 6 models; ``--active --minutes 5 --seeds 3`` trains 39 (the start model of a seed serves every order; 18 more per
added order).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _common import REPO, emit, machine, note, parse_fields, rnd
from quality import DEFAULT_DEVDATA, build_devdata_split

from core.label_next import WINDOW_WEIGHTS

PLOT = REPO / "docs" / "sparse_labels_active.png"
#: TrainConfig fields set by ``--set FIELD=JSON`` (exploring; empty: the user's defaults).
OVERRIDES: dict[str, Any] = {}
#: The fixed split of ``benchmarks/quality.py`` these runs use (``--fixed-split``).
SPLIT = {"which": "five"}
LIVE_INTERVAL_S = 15.0


def write_strokes(root: Path, seed: int, max_fraction: float = 0.02) -> dict[str, float]:
    """Replace the train labels of ``root`` by simulated strokes; returns the labelled share."""
    import numpy as np

    from core.io import read_mask
    from core.scribbles import scribble_path_for, simulate_strokes, write_scribble

    shares = {}
    labels = sorted((root / "train" / "label").glob("*.png"))
    for i, label in enumerate(labels):
        mask = read_mask(label)
        codes = simulate_strokes(mask, 1000 * seed + i, max_fraction=max_fraction)
        target = scribble_path_for(root, "train", label.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        write_scribble(target, codes)
        shares[label.name] = float(np.count_nonzero(codes)) / codes.size
        label.unlink()
    return shares


def train_and_score(
    dataset: Path,
    work: Path,
    minutes: float,
    seed: int,
    name: str,
    on_weights=None,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    from core.evaluate import evaluate
    from core.training.config import TrainConfig
    from core.training.loop import train

    config = TrainConfig(**{**OVERRIDES, **(overrides or {}), "max_minutes": minutes, "seed": seed})
    models = work / f"models_{name}_{seed}"
    result = train(dataset, models, config, on_weights=on_weights)
    scores = evaluate(dataset, result.model_path, split="test", device="cpu")
    iou = scores.metrics["iou"]
    note(
        f"  {name} seed {seed}: test IoU {iou:.4f} ({result.samples_seen} samples in "
        f"{result.seconds:.0f} s)"
    )
    return {
        "seed": seed,
        "test_iou": rnd(iou, 4),
        "samples_seen": result.samples_seen,
        "seconds": rnd(result.seconds, 1),
        "samples_per_minute": rnd(result.samples_seen / max(result.seconds, 1e-9) * 60, 1),
        "model": result.model_path,
    }


def mean(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return rnd(sum(values) / len(values), 4) if values else None


def strokes_vs_full(
    devdata: Path,
    work: Path,
    minutes: float,
    seeds: int,
    variant: dict[str, Any] | None = None,
    first_seed: int = 0,
) -> dict[str, Any]:
    """Full labels against strokes, per seed; with ``variant`` (TrainConfig fields) also the
    strokes trained with those fields set, on the same strokes."""
    full_root, stroke_root = work / "full", work / "strokes"
    split = build_devdata_split(devdata, full_root, SPLIT["which"])
    runs: dict[str, list[dict[str, Any]]] = {"full": [], "strokes": []}
    if variant:
        runs["strokes_variant"] = []
    shares: dict[str, float] = {}
    for seed in range(first_seed, first_seed + seeds):
        runs["full"].append(train_and_score(full_root, work, minutes, seed, "full"))
        if stroke_root.exists():
            shutil.rmtree(stroke_root)
        shutil.copytree(full_root, stroke_root)
        shares = write_strokes(stroke_root, seed)
        runs["strokes"].append(train_and_score(stroke_root, work, minutes, seed, "strokes"))
        if variant:
            runs["strokes_variant"].append(
                train_and_score(stroke_root, work, minutes, seed, "variant", overrides=variant)
            )
    for rows in runs.values():
        for r in rows:
            r.pop("model", None)
    full = mean([r["test_iou"] for r in runs["full"]])

    def report(name: str) -> dict[str, Any]:
        iou = mean([r["test_iou"] for r in runs[name]])
        share = rnd(iou / full, 3) if iou is not None and full else None
        return {"mean_test_iou": iou, "share_of_full": share, "runs": runs[name]}

    result = {
        "split": split,
        "labelled_share_of_pixels": {
            "max": rnd(max(shares.values()), 4),
            "mean": rnd(sum(shares.values()) / len(shares), 4),
        },
        "full_labels": {"mean_test_iou": full, "runs": runs["full"]},
        "strokes": report("strokes"),
    }
    if variant:
        result["strokes_variant"] = {"config": variant, **report("strokes_variant")}
    return result


def _doubts(model_path: Path, root: Path, names: list[str]) -> dict[str, float]:
    from core.checkpoint import load_checkpoint
    from core.io import read_image
    from core.predict import predict_probabilities
    from core.uncertainty import image_uncertainty

    loaded = load_checkpoint(model_path)
    out = {}
    for name in names:
        prob = predict_probabilities(
            loaded.model, read_image(root / "train" / "data" / name), device="cpu"
        )
        out[name] = image_uncertainty(prob, None, min(max(loaded.threshold, 0.01), 0.99))
    return out


def _copy_tiles(pool: Path, root: Path, train_names: list[str]) -> None:
    """``root``: the test split of ``pool`` and the ``train_names`` of its train split."""
    for split, names in (("train", train_names), ("test", None)):
        for kind in ("data", "label"):
            (root / split / kind).mkdir(parents=True, exist_ok=True)
            for f in sorted((pool / split / kind).glob("*.png")):
                if names is None or f.name in names:
                    shutil.copyfile(f, root / split / kind / f.name)


def _looks(root: Path, names: list[str]) -> dict[str, Any]:
    from core.io import read_image
    from core.label_next import appearance

    return {name: appearance(read_image(root / "train" / "data" / name)) for name in names}


#: The orders ``--active`` may compare (``--orders``), each with what it weighs the doubt by
#: (:func:`core.label_next.label_next_order`'s ``weigh``): the window's label next
#: (:data:`core.label_next.WINDOW_WEIGHTS`, density since 2026-12-03), the doubt alone (the
#: window's before), the doubt weighed by novelty, by density (how typical the tile's look is
#: of the pool), by both, and random (None).
ORDERS: dict[str, tuple[str, ...] | None] = {
    "label_next": WINDOW_WEIGHTS,
    "doubt": (),
    "novelty": ("novelty",),
    "density": ("density",),
    "density_novelty": ("density", "novelty"),
    "random": None,
}


def active_learning(
    devdata: Path,
    work: Path,
    minutes: float,
    seeds: int,
    orders: tuple[str, ...] = ("label_next", "random"),
    start: int = 2,
    stop: int = 8,
) -> dict[str, Any]:
    import numpy as np

    from core.label_next import label_next_order

    pool = work / "pool"
    build_devdata_split(devdata, pool, SPLIT["which"])
    tiles = sorted(p.name for p in (pool / "train" / "data").glob("*.png"))
    looks = _looks(pool, tiles) if any(ORDERS[k] for k in orders) else {}
    curves: dict[str, list[list[float]]] = {k: [] for k in orders}
    picks: dict[str, list[list[str]]] = {k: [] for k in orders}
    for seed in range(seeds):
        order = [tiles[i] for i in np.random.default_rng(seed).permutation(len(tiles))]
        first_run: dict[str, Any] | None = None  # the start model, shared by every order
        for strategy in orders:
            labelled = order[:start]
            rest = [t for t in order if t not in labelled]
            curve = []
            while True:
                root = work / f"al_{strategy}_{seed}_{len(labelled)}"
                if len(labelled) == start and first_run is not None:
                    run = first_run
                else:
                    _copy_tiles(pool, root, labelled)
                    run = train_and_score(root, work, minutes, seed, f"{strategy}-{len(labelled)}")
                    if len(labelled) == start:
                        first_run = run
                curve.append(run["test_iou"])
                if len(labelled) >= stop or not rest:
                    break
                weigh = ORDERS[strategy]
                if weigh is None:
                    pick = rest[0]  # the seeded permutation: a random order
                else:
                    doubts = _doubts(run["model"], pool, rest)
                    known = [looks[t] for t in labelled]
                    pick = label_next_order(doubts, rest, looks, known, weigh)[0]
                labelled.append(pick)
                rest.remove(pick)
                shutil.rmtree(root, ignore_errors=True)
            curves[strategy].append(curve)
            picks[strategy].append(list(labelled))
    counts = list(range(start, stop + 1))
    means = {
        k: [mean([c[i] for c in v if i < len(c)]) for i in range(len(counts))]
        for k, v in curves.items()
    }
    draw_curves(counts, means, PLOT, minutes, seeds)

    def at(k: str, n: int) -> float | None:
        return means[k][counts.index(n)] if n in counts else None

    return {
        "images": counts,
        "mean_test_iou": means,
        "curves_per_seed": curves,
        "labelled_tiles_per_seed": picks,
        "iou_at_4": {k: at(k, 4) for k in means},
        "iou_at_8": {k: at(k, 8) for k in means},
        "plot": str(PLOT.relative_to(REPO)),
    }


def draw_curves(
    counts: list[int], means: dict[str, list[float | None]], path: Path, minutes: float, seeds: int
) -> None:
    """A small line plot of the mean test IoU against the number of labelled images."""
    from PIL import Image, ImageDraw

    width, height, margin = 640, 400, 56
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    values = [v for vs in means.values() for v in vs if v is not None] or [0.0, 1.0]
    lo, hi = max(0.0, min(values) - 0.05), min(1.0, max(values) + 0.05)
    if hi - lo < 0.1:
        lo, hi = max(0.0, lo - 0.05), min(1.0, hi + 0.05)

    def xy(i: int, v: float) -> tuple[float, float]:
        x = margin + (width - 2 * margin) * (counts[i] - counts[0]) / max(1, counts[-1] - counts[0])
        y = height - margin - (height - 2 * margin) * (v - lo) / max(hi - lo, 1e-9)
        return x, y

    draw.rectangle([margin, margin, width - margin, height - margin], outline=(80, 80, 80))
    for k in range(5):
        v = lo + (hi - lo) * k / 4
        _, y = xy(0, v)
        draw.line([margin - 4, y, margin, y], fill=(80, 80, 80))
        draw.text((6, y - 6), f"{v:.2f}", fill=(40, 40, 40))
    for i, n in enumerate(counts):
        x, _ = xy(i, lo)
        draw.line([x, height - margin, x, height - margin + 4], fill=(80, 80, 80))
        draw.text((x - 3, height - margin + 8), str(n), fill=(40, 40, 40))
    draw.text((width // 2 - 80, height - 22), "labelled train images", fill=(40, 40, 40))
    draw.text(
        (margin, 14),
        f"test IoU (mean of {seeds} seed{'' if seeds == 1 else 's'}, {minutes:g} min per model)",
        fill=(40, 40, 40),
    )
    colours = {
        "label_next": (214, 40, 160),
        "doubt": (150, 150, 150),
        "novelty": (240, 150, 30),
        "density": (30, 150, 70),
        "density_novelty": (120, 60, 200),
        "random": (60, 110, 200),
    }
    for row, (name, vs) in enumerate(means.items()):
        points = [xy(i, v) for i, v in enumerate(vs) if v is not None]
        colour = colours.get(name, (0, 0, 0))
        if len(points) > 1:
            draw.line(points, fill=colour, width=3)
        for x, y in points:
            draw.ellipse([x - 4, y - 4, x + 4, y + 4], fill=colour)
        draw.line(
            [
                width - margin - 150,
                margin + 16 + 18 * row,
                width - margin - 126,
                margin + 16 + 18 * row,
            ],
            fill=colour,
            width=3,
        )
        draw.text(
            (width - margin - 120, margin + 10 + 18 * row),
            name.replace("_", " "),
            fill=(40, 40, 40),
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def live_cost(devdata: Path, work: Path, minutes: float, repeats: int = 3) -> dict[str, Any]:
    """Samples per minute of one run with and without the live preview (same seed)."""
    from core.io import read_image
    from core.training.config import TrainConfig
    from rooftop_gui.active_learning import LiveWeights, predict_with_weights

    defaults = TrainConfig()  # the architecture the runs train (the defaults)

    root = work / "live"
    build_devdata_split(devdata, root, SPLIT["which"])
    tile = read_image(sorted((root / "test" / "data").glob("*.png"))[0])[:512, :512].copy()
    previews: list[float] = []
    last = [-float("inf")]
    busy = threading.Lock()

    def on_weights(epoch: int, state: dict) -> None:
        now = time.monotonic()
        if now - last[0] < LIVE_INTERVAL_S or busy.locked():
            return
        last[0] = now
        weights = LiveWeights(epoch, state, defaults.arch, dict(defaults.arch_params))

        def work_() -> None:
            with busy:
                t0 = time.perf_counter()
                predict_with_weights(weights, tile)
                previews.append(time.perf_counter() - t0)

        threading.Thread(target=work_, daemon=True).start()

    pairs = []
    for repeat in range(repeats):  # plain and live alternate: a load change hits both
        plain = train_and_score(root, work, minutes, 0, f"plain{repeat}")
        last[0] = -float("inf")
        before = len(previews)
        live = train_and_score(root, work, minutes, 0, f"live{repeat}", on_weights=on_weights)
        while busy.locked():
            time.sleep(0.1)
        for r in (plain, live):
            r.pop("model", None)
        pairs.append(
            {
                "plain_samples_per_minute": plain["samples_per_minute"],
                "live_samples_per_minute": live["samples_per_minute"],
                "loss": rnd(1 - live["samples_per_minute"] / plain["samples_per_minute"], 4),
                "previews": len(previews) - before,
                "preview_seconds": rnd(sum(previews[before:]), 2),
                "run_seconds": live["seconds"],
            }
        )
    plain_rate = sum(p["plain_samples_per_minute"] for p in pairs) / len(pairs)
    live_rate = sum(p["live_samples_per_minute"] for p in pairs) / len(pairs)
    share = sum(p["preview_seconds"] for p in pairs) / sum(p["run_seconds"] for p in pairs)
    return {
        "pairs": pairs,
        "plain_samples_per_minute": rnd(plain_rate, 1),
        "live_samples_per_minute": rnd(live_rate, 1),
        "samples_per_minute_loss": rnd(1 - live_rate / plain_rate, 4),
        "median_pair_loss": rnd(sorted(p["loss"] for p in pairs)[len(pairs) // 2], 4),
        "preview_seconds_mean": rnd(sum(previews) / len(previews), 3) if previews else None,
        "preview_time_share_of_run": rnd(share, 4),
        "interval_s": LIVE_INTERVAL_S,
    }


def _iou(a, b) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0


def _polygon_corners(roof) -> int | None:
    """The fewest corners of a simplified outline of ``roof`` whose fill has IoU > 0.8."""
    import numpy as np
    import rasterio.features
    import shapely

    from core.annotate import fill_polygon

    shapes = [
        shapely.geometry.shape(g)
        for g, v in rasterio.features.shapes(roof.astype(np.uint8), mask=roof)
        if v == 1
    ]
    if not shapes:
        return None
    outline = max(shapes, key=lambda g: g.area).exterior
    best = None
    for tolerance in (8, 6, 4, 3, 2, 1.5, 1, 0.5):
        ring = shapely.simplify(shapely.Polygon(outline), tolerance).exterior
        corners = np.asarray(ring.coords)[:-1] - 0.5  # pixel corners -> core.annotate coords
        if len(corners) < 3:
            continue
        filled = np.zeros(roof.shape, bool)
        fill_polygon(filled, corners, True)
        if _iou(filled, roof) > 0.8 and (best is None or len(corners) < best):
            best = len(corners)
    return best


def clicks_per_roof(roofs: int = 40) -> dict[str, Any]:
    import numpy as np
    from scipy import ndimage

    from core.smart_select import smart_select
    from core.synthetic import make_scene

    image, mask = make_scene(2048, seed=0)
    labels, n = ndimage.label(mask)
    sizes = ndimage.sum(mask, labels, range(1, n + 1))
    chosen = [int(i) + 1 for i in np.argsort(-sizes, kind="stable")[:roofs]]
    boxes = ndimage.find_objects(labels)
    rows = []
    for roof_id in chosen:
        sy, sx = boxes[roof_id - 1]
        pad = 200
        y0, x0 = max(0, sy.start - pad), max(0, sx.start - pad)
        y1, x1 = min(mask.shape[0], sy.stop + pad), min(mask.shape[1], sx.stop + pad)
        roof = labels[y0:y1, x0:x1] == roof_id
        crop = image[y0:y1, x0:x1]
        selected = np.zeros(roof.shape, bool)
        clicks, iou = None, 0.0
        for k in range(1, 11):
            depth = ndimage.distance_transform_edt(roof & ~selected)
            if depth.max() <= 0:
                break
            y, x = np.unravel_index(int(np.argmax(depth)), depth.shape)
            region = smart_select(crop, float(x), float(y))
            if region is not None:
                selected |= region
            iou = _iou(selected, roof)
            if iou > 0.8:
                clicks = k
                break
        rows.append(
            {
                "area_px": int(roof.sum()),
                "smart_clicks": clicks,
                "smart_iou": rnd(iou, 3),
                "polygon_corners": _polygon_corners(roof),
            }
        )
    reached = [r["smart_clicks"] for r in rows if r["smart_clicks"] is not None]
    corners = [r["polygon_corners"] for r in rows if r["polygon_corners"] is not None]
    both = [r for r in rows if r["smart_clicks"] is not None and r["polygon_corners"]]
    return {
        "roofs": len(rows),
        "smart_select": {
            "reached_iou_0.8": len(reached),
            "mean_clicks": rnd(np.mean(reached), 2) if reached else None,
            "median_clicks": rnd(np.median(reached), 1) if reached else None,
        },
        "polygon": {
            "reached_iou_0.8": len(corners),
            "mean_corners": rnd(np.mean(corners), 2) if corners else None,
            "median_corners": rnd(np.median(corners), 1) if corners else None,
        },
        "roofs_both_reached": len(both),
        "on_those": {
            "smart_mean_clicks": rnd(np.mean([r["smart_clicks"] for r in both]), 2)
            if both
            else None,
            "polygon_mean_corners": rnd(np.mean([r["polygon_corners"] for r in both]), 2)
            if both
            else None,
        },
        "per_roof": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devdata", type=Path, default=DEFAULT_DEVDATA)
    parser.add_argument("--minutes", type=float, default=5.0, help="training budget per model")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--first-seed", type=int, default=0, help="strokes vs full: seeds from this one on"
    )
    parser.add_argument("--active", action="store_true", help="active-learning curves")
    parser.add_argument(
        "--orders",
        nargs="+",
        choices=ORDERS,
        default=["label_next", "random"],
        help="--active: the orders compared",
    )
    parser.add_argument("--live-cost", action="store_true", help="cost of the live preview")
    parser.add_argument(
        "--clicks",
        action="store_true",
        help="smart-select clicks per roof against the polygon tool (demo scene)",
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="--live-cost: plain / live run pairs, alternating"
    )
    parser.add_argument("--roofs", type=int, default=40, help="roofs measured by --clicks")
    parser.add_argument("--keep", type=Path, default=None, help="work here and keep it")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="FIELD=JSON",
        help="strokes vs full: also train the strokes with this TrainConfig field set, "
        "e.g. pseudo_labels=0.9 (repeat for several fields)",
    )
    parser.add_argument(
        "--fixed-split",
        choices=("five", "three"),
        default="five",
        help="quality.py's fixed split of all five sources (default) or of the first three",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=JSON",
        help="override a TrainConfig field of every run (exploring), e.g. pseudo_labels=0.9",
    )
    args = parser.parse_args(argv)
    SPLIT["which"] = args.fixed_split
    OVERRIDES.update(parse_fields(args.set))
    if args.clicks:
        started = time.time()
        result = {"clicks": clicks_per_roof(args.roofs)}
        result.update({"machine": machine(), "wall_seconds": rnd(time.time() - started, 1)})
        emit(result)
        return 0
    if not args.devdata.is_dir():
        note(f"no devdata at {args.devdata}: nothing measured")
        emit({"skipped": f"devdata not found at {args.devdata}"})
        return 0
    work = args.keep or Path(tempfile.mkdtemp(prefix="rooftop-sparse-"))
    started = time.time()
    try:
        if args.live_cost:
            result = {"live_cost": live_cost(args.devdata, work, args.minutes, args.repeats)}
        elif args.active:
            orders = tuple(args.orders)
            result = {
                "active": active_learning(args.devdata, work, args.minutes, args.seeds, orders)
            }
        else:
            result = {
                "strokes_vs_full": strokes_vs_full(
                    args.devdata,
                    work,
                    args.minutes,
                    args.seeds,
                    parse_fields(args.variant),
                    args.first_seed,
                )
            }
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    result.update(
        {
            "minutes": args.minutes,
            "seeds": args.seeds,
            "config_overrides": OVERRIDES,
            "fixed_split": args.fixed_split,
            "machine": machine(),
            "wall_seconds": rnd(time.time() - started, 1),
        }
    )
    emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
