"""Model quality on real aerial tiles: the prescribed model trained the original way against our
default recipe, for the same wall-clock budget, scored on unseen tiles.

    python benchmarks/quality.py [--minutes 5] [--seeds 3] [--protocol fixed|loso|both]
    python benchmarks/quality.py --demo [--minutes 2]

The data is ../shared/devdata (37 image/mask pairs from 5 sources; it is never copied into the
repository). The split is fixed and keeps every source scene (each tile is its own scene) on one
side: the test split is one tile of each source, :data:`TEST_TILES`; the other 32 are the train
split (``--fixed-split three``: the split of the first 13 pairs from 3 sources, before shanghai and
rio were added: :data:`FIRST_TEST_TILES` tests, 10 train; every run of either split also reports
``test_iou_first_three``, pooled over those three tiles, so the two compare). Tiles are written whole into a temporary ``DATASET/{train,test}/{data,label}/`` (same file
name for image and label); the trainer crops them (256 px crops; the tiles are 256 or 650 px),
and holds out two tiles of the train split (chosen by the seed) for validation.

Both runs go through the public API (``core.training.loop.train`` then ``core.evaluate.evaluate`` on the
test split, with each model's own threshold) and get the same time budget (``--minutes``, which
includes loading the data and the per-epoch validation) and nothing else: every other setting is
the default a user gets from ``rooftop train --max-minutes M`` (the budget alone ends the run):

* prescribed, the original way: ``TrainConfig(**ORIGINAL_RECIPE)``: Adam 1e-4, BCE, batch 32,
  no augmentation, constant learning rate, threshold 0.5;
* ours: ``TrainConfig(**DEFAULT_RECIPE)``: the defaults of ``rooftop train``.

Each run also reports ``test_iou_by_threshold``, the test IoU at thresholds 0.05 to 0.95: a
diagnosis (is the model's own threshold, tuned on validation, where the test tiles want it?),
not a result, since it looks at the test tiles.

``--starter-minutes M`` first trains ours on the synthetic demo scene (as ``--demo`` makes it)
for ``M`` minutes and starts every real-data run from its weights (``--init MODEL``: from a given
model), with a fresh optimizer and schedule, as ``rooftop train --init`` does: whether a starter
model shipped with the package would raise real-data IoU in the same budget.

``--demo`` trains only ours (``--minutes`` default 2) on the synthetic demo scene
(``core.synthetic.write_demo`` at 1024 px, cut by ``core.generate.generate_dataset`` into 256 px
windows with stride 0.5, resized to 256) and reports its test IoU.

``--protocol loso`` (or ``both``) adds leave-one-subset-out: for each subset of
:data:`LOSO_SUBSETS` (all five sources: crowdai, potsdam, spacenet, shanghai, rio), ours is
trained on every tile of the other four and tested on every tile of the one left out: how a model
holds up on a city or a sensor it never saw.

Every figure is reported for each of ``--seeds`` seeds (0, 1, 2, ...; from ``--first-seed`` S
on, to add seeds to an earlier run) with their mean and spread (max - min).

Prints ONE JSON object on stdout; progress goes to stderr. When the devdata folder is absent it
says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import REPO, emit, machine, note, parse_fields, rnd

DEFAULT_DEVDATA = REPO.parent / "shared" / "devdata"
#: Every source of the devdata (the fixed split and the leave-one-subset-out protocol).
LOSO_SUBSETS = ("crowdai", "potsdam", "spacenet", "shanghai", "rio")
#: The first three sources (the devdata's first 13 pairs; ``--fixed-split three``).
FIRST_SUBSETS = ("crowdai", "potsdam", "spacenet")
#: The test tiles of the first three sources (each run reports their pooled IoU).
FIRST_TEST_TILES = ("crowdai_6.png", "potsdam_7_9.png", "spacenet_shanghai_img945.png")
#: One tile of each source for testing; everything else trains. The shanghai and rio tiles have
#: a building fraction near their source's median, and the shanghai one no neighbour in the grid.
TEST_TILES = (*FIRST_TEST_TILES, "shanghai_6_4.png", "rio_img55.png")
FIRST_TEST_STEMS = {Path(name).stem for name in FIRST_TEST_TILES}
FIXED_SPLITS = {"five": (LOSO_SUBSETS, TEST_TILES), "three": (FIRST_SUBSETS, FIRST_TEST_TILES)}


#: The ground sample distance of each devdata source in m per pixel, as its README gives it
#: (``--georeferenced``); shanghai's is undocumented (0.3-0.6), so its tiles stay PNGs.
DEVDATA_GSD = {"crowdai": 0.3, "potsdam": 1.17, "spacenet": 0.3, "rio": 0.5}


def copy_pair(image: Path, mask: Path, out: Path, split: str, gsd: float | None) -> None:
    """Copy one tile and its mask into ``out/<split>/{data,label}/``: as they are (PNG), or
    with ``gsd`` as a GeoTIFF in a UTM zone with pixels of ``gsd`` m (the mask too, so the two
    keep one name), as a tile cut from a georeferenced orthophoto would be."""
    if gsd is None:
        for kind, source in (("data", image), ("label", mask)):
            target = out / split / kind / image.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        return
    import numpy as np
    import rasterio
    from PIL import Image
    from rasterio.transform import Affine

    name = image.with_suffix(".tif").name
    for kind, source in (("data", image), ("label", mask)):
        pixels = np.asarray(Image.open(source))
        bands = pixels[None] if pixels.ndim == 2 else np.moveaxis(pixels, -1, 0)
        target = out / split / kind / name
        target.parent.mkdir(parents=True, exist_ok=True)
        with rasterio.open(
            target,
            "w",
            driver="GTiff",
            width=bands.shape[2],
            height=bands.shape[1],
            count=bands.shape[0],
            dtype="uint8",
            crs="EPSG:32633",
            transform=Affine(gsd, 0.0, 500_000.0, 0.0, -gsd, 5_800_000.0),
        ) as dst:
            dst.write(bands)


def build_devdata_split(
    devdata: Path, out: Path, which: str = "five", georeferenced: bool = False
) -> dict[str, list[str]]:
    """Write ``out/{train,test}/{data,label}/NAME.png`` from the devdata subsets: the fixed
    split of all five sources (``which="five"``) or of the first three (``georeferenced``:
    GeoTIFFs at :data:`DEVDATA_GSD` where it is known)."""
    subsets, test_tiles = FIXED_SPLITS[which]
    split: dict[str, list[str]] = {"train": [], "test": []}
    for subset in subsets:
        gsd = DEVDATA_GSD.get(subset) if georeferenced else None
        for image in sorted((devdata / subset / "images").glob("*.png")):
            mask = devdata / subset / "masks" / image.name
            if not mask.is_file():
                raise SystemExit(f"devdata: {image} has no mask {mask}")
            name = "test" if image.name in test_tiles else "train"
            copy_pair(image, mask, out, name, gsd)
            split[name].append(image.name)
    missing = set(test_tiles) - set(split["test"])
    if missing:
        raise SystemExit(f"devdata: test tiles not found: {', '.join(sorted(missing))}")
    return split


def build_loso_split(
    devdata: Path, out: Path, held_out: str, georeferenced: bool = False
) -> dict[str, list[str]]:
    """``out/{train,test}/...``: the tiles of ``held_out`` to test, of every other subset to
    train on (``georeferenced``: as :func:`build_devdata_split`)."""
    split: dict[str, list[str]] = {"train": [], "test": []}
    for subset in LOSO_SUBSETS:
        gsd = DEVDATA_GSD.get(subset) if georeferenced else None
        for image in sorted((devdata / subset / "images").glob("*.png")):
            name = "test" if subset == held_out else "train"
            copy_pair(image, devdata / subset / "masks" / image.name, out, name, gsd)
            split[name].append(image.name)
    return split


def summary(runs: list[dict[str, Any]], key: str = "test_iou") -> dict[str, Any]:
    """Mean and spread of ``key`` over the runs of several seeds, with the runs."""
    values = [r[key] for r in runs if r.get(key) is not None]
    return {
        "mean": rnd(sum(values) / len(values), 4) if values else None,
        "spread": rnd(max(values) - min(values), 4) if values else None,
        "values": values,
        "runs": runs,
    }


def mean_of(values: list[float | None]) -> float | None:
    """The mean of ``values``, None when there are none or one is missing."""
    if not values or None in values:
        return None
    return rnd(sum(values) / len(values), 4)


def build_demo_split(out: Path) -> dict[str, list[str]]:
    from core.generate import GenerateConfig, PatchSpec, generate_dataset
    from core.synthetic import write_demo

    image, labels = write_demo(out / "scene", size=1024, seed=0)
    config = GenerateConfig(patches=(PatchSpec.parse("256:0.5"),), resize=256)
    result = generate_dataset(image, labels, out / "dataset", config)
    return {"train_patches": result.n_train, "test_patches": result.n_test}


def run(
    name: str, dataset: Path, work: Path, config: Any, init_from: Path | None = None
) -> dict[str, Any]:
    from core.evaluate import evaluate
    from core.metrics import Confusion
    from core.training.config import BatchProgress, EpochResult
    from core.training.loop import train

    last = [0.0]

    def progress(event: Any) -> None:
        if isinstance(event, EpochResult) and time.monotonic() - last[0] > 15:
            last[0] = time.monotonic()
            iou = "-" if event.val_iou is None else f"{event.val_iou:.3f}"
            note(
                f"  {name}: epoch {event.epoch}, {event.samples_seen} samples, "
                f"train loss {event.train_loss:.4f}, val IoU {iou}"
            )
        elif isinstance(event, BatchProgress):
            pass

    note(f"training {name} ({config.arch}) for {config.max_minutes} min on {config.device} ...")
    result = train(
        dataset,
        work / f"models_{name.replace(' ', '_')}",
        config,
        on_progress=progress,
        init_from=init_from,
    )
    scores = evaluate(dataset, result.model_path, split="test", device=config.device)
    m = scores.metrics
    first_three = [s.confusion for s in scores.per_image if Path(s.name).stem in FIRST_TEST_STEMS]
    note(f"  {name}: test IoU {m['iou']:.4f} F1 {m['f1']:.4f} ({result.samples_seen} samples)")
    tta, by_threshold = tta_iou(dataset, result.model_path, config.device)
    return {
        "test_iou_tta": rnd(tta, 4),
        # a diagnosis: batch-norm statistics re-estimated on all the test tiles together (AdaBN),
        # half and half with the training statistics, and in full
        **{
            f"test_iou_adapted_bn_{name}": rnd(iou, 4)
            for name, iou in adapted_bn_iou(dataset, result.model_path, config.device).items()
        },
        # a diagnosis, not a result: the test IoU had the threshold been chosen on the test tiles
        "test_iou_by_threshold": by_threshold,
        "arch": config.arch,
        "test_iou": rnd(m["iou"], 4),
        "test_f1": rnd(m["f1"], 4),
        "test_precision": rnd(m["precision"], 4),
        "test_recall": rnd(m["recall"], 4),
        "per_image_iou": {s.name: rnd(s.iou, 4) for s in scores.per_image},
        # pooled over the test tiles of the first three sources, where this test set has them
        "test_iou_first_three": (
            rnd(sum(first_three, Confusion()).iou, 4)
            if len(first_three) == len(FIRST_TEST_TILES)
            else None
        ),
        "threshold": scores.threshold,
        "samples_seen": result.samples_seen,
        "epochs": len(result.history),
        "best_epoch": result.best_epoch,
        "val_iou": rnd(result.val_iou, 4),
        # the last validation at threshold 0.5 (val_iou is at the model's own threshold)
        "val_iou_at_half": rnd(result.history[-1].val_iou, 4),
        "seconds": rnd(result.seconds, 1),
        "stopped": result.stopped,
        "config": {k: v for k, v in vars(config).items() if k not in ("device", "max_minutes")},
    }


#: Thresholds of the diagnostic curve ``test_iou_by_threshold``.
CURVE_THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 20))


def tta_iou(dataset: Path, model_path: Path, device: str) -> tuple[float, dict[str, float]]:
    """Test IoU with flip test-time augmentation (``rooftop predict --tta``) at the model's
    threshold, and the test IoU without it at each of :data:`CURVE_THRESHOLDS`."""
    from core.checkpoint import load_checkpoint
    from core.dataset import open_dataset
    from core.io import read_image_and_mask
    from core.metrics import Confusion
    from core.postprocess import to_mask
    from core.predict import image_resolution, predict_probabilities

    loaded = load_checkpoint(model_path, device=device)
    total = Confusion()
    curve = {t: Confusion() for t in CURVE_THRESHOLDS}
    for sample in open_dataset(dataset).test:
        image, truth = read_image_and_mask(sample.image_path, sample.label_path)
        # at the model's ground resolution, as `rooftop evaluate` predicts a GeoTIFF tile
        at = image_resolution(sample.image_path, None, loaded.model)
        prob = predict_probabilities(
            loaded.model, image, device=device, tta=True, ground_resolution=at
        )
        total = total + Confusion.from_masks(to_mask(prob, loaded.threshold), truth)
        plain = predict_probabilities(loaded.model, image, device=device, ground_resolution=at)
        for t in CURVE_THRESHOLDS:
            curve[t] = curve[t] + Confusion.from_masks(to_mask(plain, t), truth)
    return total.iou, {f"{t:.2f}": rnd(c.iou, 4) for t, c in curve.items()}


#: The weights of the test tiles' batch-norm statistics that ``adapted_bn_iou`` tries, by name.
ADAPTATION_WEIGHTS = {"half": 0.5, "full": 1.0}


def adapted_bn_iou(dataset: Path, model_path: Path, device: str) -> dict[str, float]:
    """Test IoU at the model's threshold once its batch-norm statistics are re-estimated on the
    test tiles (``rooftop evaluate --adapt``: :mod:`core.imagery_adaptation`), blended with the
    training ones by each of :data:`ADAPTATION_WEIGHTS`: the new town's imagery, predicted as it
    is (tiled, stretched, at the model's ground resolution)."""
    from dataclasses import replace

    from core.checkpoint import load_checkpoint
    from core.dataset import open_dataset
    from core.evaluate import evaluate
    from core.imagery_adaptation import adapted_model, image_samples

    loaded = load_checkpoint(model_path, device=device)
    tiles = image_samples(open_dataset(dataset).test, loaded.model)
    scores = {}
    for name, weight in ADAPTATION_WEIGHTS.items():
        adapted = adapted_model(loaded.model, tiles, device=device, weight=weight)
        scores[name] = evaluate(dataset, replace(loaded, model=adapted), device=device).metrics[
            "iou"
        ]
    return scores


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devdata", type=Path, default=DEFAULT_DEVDATA, help="devdata folder")
    parser.add_argument(
        "--minutes",
        type=float,
        default=None,
        help="training budget per model (default 5; 2 with --demo)",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument(
        "--demo", action="store_true", help="only ours, on the synthetic demo scene"
    )
    parser.add_argument("--skip-prescribed", action="store_true", help="train only our default")
    parser.add_argument(
        "--arch", default=None, help="override our default architecture (exploring)"
    )
    parser.add_argument(
        "--arch-params", default="{}", help="JSON parameters for --arch (exploring)"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=JSON",
        help="override a TrainConfig field of our run (exploring), e.g. lr=1e-3",
    )
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0 .. N-1; mean and spread")
    parser.add_argument(
        "--first-seed",
        type=int,
        default=0,
        help="start the seeds here (S .. S+N-1), to add a seed to an earlier run",
    )
    parser.add_argument(
        "--protocol",
        choices=("fixed", "loso", "both"),
        default="fixed",
        help="the fixed split, leave-one-subset-out, or both",
    )
    parser.add_argument(
        "--fixed-split",
        choices=tuple(FIXED_SPLITS),
        default="five",
        help="the fixed split of all five sources (default) or of the first three",
    )
    parser.add_argument("--keep", type=Path, default=None, help="work here and keep the models")
    parser.add_argument(
        "--georeferenced",
        action="store_true",
        help="write the tiles as GeoTIFFs at their source's ground sample distance (DEVDATA_GSD, "
        "from the devdata README), as tiles cut from orthophotos are: training and prediction "
        "then resample them to the model's ground resolution, as they do for a user's",
    )
    parser.add_argument(
        "--subsets",
        nargs="+",
        choices=LOSO_SUBSETS,
        default=None,
        help="with --protocol loso: hold out only these subsets (default: each of the five)",
    )
    parser.add_argument(
        "--init",
        type=Path,
        default=None,
        help="start ours from this model's weights (what `rooftop train --init MODEL` does)",
    )
    parser.add_argument(
        "--starter-minutes",
        type=float,
        default=None,
        help="first train a starter model on the synthetic demo scene for this many minutes "
        "(the defaults), then start ours from it (a candidate model to ship with the package)",
    )
    args = parser.parse_args(argv)
    minutes = args.minutes if args.minutes is not None else (2.0 if args.demo else 5.0)

    if not args.demo and not (args.devdata / LOSO_SUBSETS[0] / "images").is_dir():
        note(
            f"devdata not found at {args.devdata}: skipping the real-data quality benchmark "
            "(pass --devdata PATH, or --demo for the synthetic scene)"
        )
        emit({"benchmark": "quality", "skipped": f"devdata not found at {args.devdata}"})
        return 0

    import torch

    from core.training.config import DEFAULT_RECIPE, ORIGINAL_RECIPE, TrainConfig

    work = args.keep or Path(tempfile.mkdtemp(prefix="rooftop-quality-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        ours = dict(DEFAULT_RECIPE)
        if args.arch:
            ours["arch"] = args.arch
        ours["arch_params"] = json.loads(args.arch_params)
        ours.update(parse_fields(args.set))
        seeds = list(range(args.first_seed, args.first_seed + args.seeds))

        def config(recipe: dict[str, Any], seed: int) -> Any:
            # what `rooftop train --max-minutes M [--device D] [--seed S]` runs: nothing else set
            return TrainConfig(
                **{**recipe, "max_minutes": minutes, "device": args.device, "seed": seed}
            )

        result: dict[str, Any] = {
            "benchmark": "quality",
            "georeferenced": DEVDATA_GSD if args.georeferenced else None,
            "budget_minutes": minutes,
            "device": args.device,
            "torch_threads": torch.get_num_threads(),
            "machine": machine(),
            "seeds": seeds,
        }
        init_from = args.init
        if args.starter_minutes:
            build_demo_split(work / "starter")
            starter_config = TrainConfig(
                **{**ours, "max_minutes": args.starter_minutes, "device": args.device}
            )
            starter = run("starter", work / "starter" / "dataset", work, starter_config)
            init_from = next((work / "models_starter").glob("model_v*.safetensors"))
            result["starter"] = {"minutes": args.starter_minutes, **starter}
        if init_from is not None:
            result["init"] = str(init_from)
        if args.demo:
            split = build_demo_split(work / "demo")
            dataset = work / "demo" / "dataset"
            result.update(
                data="synthetic demo scene 1024 px, patches 256:0.5, resize 256", split=split
            )
            result["ours"] = summary(
                [run("ours", dataset, work / f"s{seed}", config(ours, seed)) for seed in seeds]
            )
        if not args.demo and args.protocol in ("fixed", "both"):
            dataset = work / "devdata"
            split = build_devdata_split(args.devdata, dataset, args.fixed_split, args.georeferenced)
            fixed: dict[str, Any] = {
                "data": str(args.devdata),
                "fixed_split": args.fixed_split,
                "split": split,
            }
            if not args.skip_prescribed:
                fixed["prescribed"] = summary(
                    [
                        run("prescribed", dataset, work / f"s{seed}", config(ORIGINAL_RECIPE, seed))
                        for seed in seeds
                    ]
                )
            fixed["ours"] = summary(
                [
                    run("ours", dataset, work / f"s{seed}", config(ours, seed), init_from)
                    for seed in seeds
                ]
            )
            if "prescribed" in fixed and fixed["prescribed"]["mean"]:
                fixed["iou_ratio"] = rnd(fixed["ours"]["mean"] / fixed["prescribed"]["mean"], 2)
            fixed["ours"]["test_iou_first_three"] = summary(
                fixed["ours"]["runs"], "test_iou_first_three"
            )["mean"]
            for name in ADAPTATION_WEIGHTS:
                key = f"test_iou_adapted_bn_{name}"
                fixed["ours"][key] = summary(fixed["ours"]["runs"], key)["mean"]
            result["fixed"] = fixed
        if not args.demo and args.protocol in ("loso", "both"):
            loso: dict[str, Any] = {}
            for held_out in args.subsets or LOSO_SUBSETS:
                dataset = work / f"loso_{held_out}"
                split = build_loso_split(args.devdata, dataset, held_out, args.georeferenced)
                note(f"leave-one-subset-out: testing on {held_out} ({len(split['test'])} tiles)")
                loso[held_out] = summary(
                    [
                        run(
                            f"ours without {held_out}",
                            dataset,
                            work / f"loso_{held_out}_s{seed}",
                            config(ours, seed),
                            init_from,
                        )
                        for seed in seeds
                    ]
                )
                loso[held_out]["test_tiles"] = len(split["test"])
                for name in ADAPTATION_WEIGHTS:
                    key = f"test_iou_adapted_bn_{name}"
                    loso[held_out][key] = summary(loso[held_out]["runs"], key)["mean"]
            means = [v["mean"] for v in loso.values() if v["mean"] is not None]
            result["loso"] = {
                "subsets": loso,
                "mean_test_iou": rnd(sum(means) / len(means), 4) if means else None,
                **{
                    f"mean_test_iou_adapted_bn_{name}": mean_of(
                        [v[f"test_iou_adapted_bn_{name}"] for v in loso.values()]
                    )
                    for name in ADAPTATION_WEIGHTS
                },
                "worst_subset_iou": rnd(min(means), 4) if means else None,
            }
        emit(result)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
