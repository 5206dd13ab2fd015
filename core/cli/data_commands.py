"""``rooftop demo`` and ``rooftop generate``: the synthetic scene and patch datasets."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from core.cli.output import Formatter, ProgressBar, Reporter
from core.errors import ConfigError


def cmd_demo(args: argparse.Namespace, out: Reporter) -> dict[str, Any]:
    from core.synthetic import write_demo

    start = time.monotonic()
    image_path, label_path = write_demo(args.out_dir, size=args.size, seed=args.seed)
    out.line(
        f"wrote {image_path} and {label_path} ({args.size} x {args.size}, seed {args.seed}) "
        f"in {time.monotonic() - start:.1f} s"
    )
    return {"image": str(image_path), "label": str(label_path)}


def _parse_rotations(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.replace(" ", "").split(",") if v != "")
    except ValueError:
        raise ConfigError(
            f"--rotations takes degrees separated by commas, like 0,90,180; got {text!r}"
        ) from None
    if not values or any(v % 90 for v in values):
        raise ConfigError(
            f"--rotations must be multiples of 90 degrees, like 0,90,180; got {text!r}"
        )
    return values


def cmd_generate(args: argparse.Namespace, out: Reporter) -> dict[str, Any]:
    from core.generate import DEFAULT_PATCHES, GenerateConfig, PatchSpec, generate_dataset

    patches = tuple(PatchSpec.parse(p) for p in args.patch) if args.patch else DEFAULT_PATCHES
    if args.resize and args.resize < 16:
        raise ConfigError(
            f"--resize must be at least 16 px (or 0 to keep the window size), got {args.resize}"
        )
    if not 0 <= args.test_fraction < 1:
        raise ConfigError(f"--test-fraction must be from 0 up to 1, got {args.test_fraction}")
    config = GenerateConfig(
        patches=patches,
        resize=args.resize or None,
        rotations=_parse_rotations(args.rotations),
        test_fraction=args.test_fraction,
        seed=args.seed,
        overwrite=args.overwrite,
    )
    if (args.label is None) == (args.footprints is None):
        raise ConfigError(
            "give the roof mask with --label or building footprints with "
            "--footprints (one of the two)"
        )
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="rooftop-footprints-") as scratch:
        label = args.label
        if args.footprints is not None:  # the label is the footprints burnt into the image's grid
            from core.vector.mask_files import rasterize_footprints_file

            burnt = rasterize_footprints_file(
                args.image, args.footprints, Path(scratch) / "label.png"
            )
            label = burnt.path
            out.line(
                f"rasterised {burnt.footprints} footprints of {args.footprints} "
                f"({burnt.roof_fraction:.1%} of the image is roof)"
            )
        with ProgressBar(out, "generating", "patches") as bar:
            result = generate_dataset(args.image, label, args.out, config, on_progress=bar)
    share = result.n_test / max(1, result.n_train + result.n_test)
    out.line(
        f"wrote {result.n_train} train and {result.n_test} test patches ({share:.1%} test) to "
        f"{result.dataset_dir} in {time.monotonic() - start:.1f} s; manifest {result.manifest_path}"
    )
    if result.n_test and abs(share - config.test_fraction) > 0.05:
        out.line(
            f"note: the test share is {share:.0%}, not the {config.test_fraction:.0%} asked for: "
            "the split keeps whole windows on one side of a band of the image, and this image "
            "is small for its windows (smaller --patch sizes get closer)"
        )
    return {
        "dataset": str(result.dataset_dir),
        "train": result.n_train,
        "test": result.n_test,
        "manifest": str(result.manifest_path),
    }


def add_commands(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        formatter_class=Formatter,
        help="write a synthetic aerial scene (image.png) and its roof mask (labels.png)",
        description="Write OUT_DIR/image.png (RGB) and OUT_DIR/labels.png (0/255 roof "
        "mask): a procedural suburb seen from above. Same seed, same pixels.",
    )
    p.add_argument("out_dir", metavar="OUT_DIR", type=Path, help="folder to write into (created)")
    p.add_argument(
        "--size", type=int, default=2048, help="width and height in pixels (64 to 20000)"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed of the scene")
    p.set_defaults(run=cmd_demo)

    p = sub.add_parser(
        "generate",
        formatter_class=Formatter,
        help="cut a large image and its mask into a train/test patch dataset",
        description="Slide square windows over the image (each rotation, each patch "
        "size), resize the patches, and write DATASET/{train,test}/{data,"
        "label}/NNNNN.png plus DATASET/manifest.csv. The train/test split "
        "is spatial: no ground pixel is in both splits.",
    )
    p.add_argument(
        "--image", required=True, type=Path, help="the large aerial image (TIFF, PNG, JPEG)"
    )
    p.add_argument(
        "--label", type=Path, default=None, help="its roof mask (any non-zero value = roof)"
    )
    p.add_argument(
        "--footprints",
        type=Path,
        default=None,
        help="instead of --label: building footprints (.gpkg, .geojson, .shp), "
        "reprojected to the image's CRS and burnt into the label",
    )
    p.add_argument("--out", required=True, type=Path, help="dataset folder to create")
    p.add_argument(
        "--patch",
        action="append",
        metavar="SIZE:STRIDE_FRACTION",
        help="window size and stride as a fraction of it; repeat for several "
        "(default: 512:0.25 1024:0.25 256:0.5)",
    )
    p.add_argument(
        "--resize", type=int, default=512, help="resize every patch to this size (0 = keep)"
    )
    p.add_argument("--rotations", default="0,90,180", help="rotations in degrees (multiples of 90)")
    p.add_argument(
        "--test-fraction", type=float, default=0.15, help="share of patches for the test split"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed of the split")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset in --out")
    p.add_argument("--json", action="store_true", help="print one JSON object with the counts")
    p.set_defaults(run=cmd_generate)
