"""``rooftop evaluate`` and ``rooftop predict``: score a model, predict images and orthophotos."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from core.cli.output import Formatter, ProgressBar, Reporter, format_area
from core.errors import ConfigError
from core.predict_files import DEFAULT_SIMPLIFY


def cmd_evaluate(args: argparse.Namespace, out: Reporter) -> dict[str, Any]:
    from core.evaluate import evaluate

    with ProgressBar(out, "evaluating", "images") as bar:
        result = evaluate(
            args.data,
            args.model,
            split=args.split,
            threshold=args.threshold,
            dilation=args.dilation,
            device=args.device,
            tile=args.tile,
            overlap=args.overlap,
            on_progress=bar,
            precision=args.precision,
            gsd=args.gsd,
            adapt=args.adapt,
        )
    m = result.metrics
    out.line(
        f"{result.split} split, {result.images} images, threshold {result.threshold}, "
        f"dilation {result.dilation}: IoU {m['iou']:.4f}  F1 {m['f1']:.4f}  precision "
        f"{m['precision']:.4f}  recall {m['recall']:.4f}  accuracy {m['accuracy']:.4f}  "
        f"loss {m['loss']:.4f}" + (" (adapted to the split's images)" if result.adapted else "")
    )
    return result.as_dict()


def _bands(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        bands = tuple(int(b) for b in text.replace(" ", "").split(",") if b)
    except ValueError:
        raise ConfigError(
            f"--bands takes band numbers separated by commas, like 1,2,3; got {text!r}"
        ) from None
    if len(bands) not in (1, 3):
        raise ConfigError(
            f"--bands takes one band (grey) or three (red, green, blue), got {text!r}"
        )
    return bands


def cmd_predict(args: argparse.Namespace, out: Reporter) -> dict[str, Any]:
    from core.predict_files import PolygonOutput, predict_files

    polygons = None
    if args.polygons:
        polygons = PolygonOutput(
            format=args.polygons,
            min_area=args.min_area,
            simplify=args.simplify,
            regularize=args.regularize,
            gsd=args.gsd,
        )
    with ProgressBar(out, "predicting", "files") as bar:
        results = predict_files(
            args.model,
            args.inputs,
            args.out,
            threshold=args.threshold,
            dilation=args.dilation,
            tile=args.tile,
            overlap=args.overlap,
            composite_output=args.composite,
            device=args.device,
            tta=args.tta,
            on_progress=bar,
            precision=args.precision,
            probabilities=args.probabilities,
            cog=args.cog,
            bands=_bands(args.bands),
            polygons=polygons,
            engine=args.engine,
            gsd=args.gsd,
            adapt=args.adapt,
        )
    for r in results:
        for warning in r.warnings:
            out.line(f"warning: {warning}")
        extra = "".join(f" and {p}" for p in (r.probability_path, r.composite_path) if p)
        out.line(f"{r.source} -> {r.mask_path}{extra} ({r.roof_fraction:.1%} roof)")
        if r.polygons_path is not None:
            out.line(
                f"  {r.buildings} buildings, {format_area(r.roof_area, r.area_unit)} of roof -> "
                f"{r.polygons_path}"
            )
    return {
        "outputs": [
            {
                "input": str(r.source),
                "mask": str(r.mask_path),
                "composite": str(r.composite_path) if r.composite_path else None,
                "probability": str(r.probability_path) if r.probability_path else None,
                "polygons": str(r.polygons_path) if r.polygons_path else None,
                "buildings": r.buildings,
                "roof_area": r.roof_area,
                "area_unit": None if r.area_unit is None else f"{r.area_unit}2",
                "georeferenced": r.georeferenced,
                "warnings": r.warnings,
                "roof_fraction": r.roof_fraction,
            }
            for r in results
        ]
    }


ADAPT_HELP = (
    "re-estimate the model's batch-norm statistics on {what}, half and half with its own "
    "(AdaBN; for imagery of another sensor, town or year; docs/model-quality.md)"
)


def add_adapt(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--adapt", action="store_true", help=ADAPT_HELP.format(what=what))


GSD_HELP = "ground sample distance in m/px for an image without a CRS (areas in m²)"


def add_polygon_options(
    p: argparse.ArgumentParser, simplify_default: float, gsd_help: str = GSD_HELP
) -> None:
    p.add_argument(
        "--min-area",
        type=float,
        default=0.0,
        help="drop buildings smaller than this (m², or px² without a CRS)",
    )
    p.add_argument(
        "--simplify",
        type=float,
        default=simplify_default,
        help="outline simplification tolerance (m, or px without a CRS; 0 = exact pixel outlines)",
    )
    p.add_argument(
        "--regularize", action="store_true", help="right-angled, parallel-edged building outlines"
    )
    p.add_argument(
        "--gsd",
        type=float,
        default=None,
        help=gsd_help,
    )


def add_postprocess(p: argparse.ArgumentParser) -> None:
    from core.training.config import PRECISIONS

    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="probability threshold (default: the model's own, usually 0.5)",
    )
    p.add_argument(
        "--dilation",
        type=int,
        default=0,
        help="max-pool the probability map with a K x K window first (0 or 1 = off)",
    )
    p.add_argument("--tile", type=int, default=512, help="tile size for large images")
    p.add_argument("--overlap", type=int, default=64, help="overlap between tiles, blended")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument(
        "--precision",
        default="auto",
        choices=PRECISIONS,
        help="arithmetic: auto (bfloat16 mixed precision on a GPU or a CPU with native bfloat16, "
        "else float32), fp32 or bf16",
    )


def add_commands(sub: Any) -> None:
    p = sub.add_parser(
        "evaluate",
        formatter_class=Formatter,
        help="score a model on a dataset split",
        description="Loss, IoU, F1, precision, recall and pixel accuracy, each summed "
        "over all pixels of the split (not averaged per image).",
    )
    p.add_argument("--data", required=True, type=Path, help="dataset folder")
    p.add_argument("--model", required=True, type=Path, help="model file (.safetensors)")
    p.add_argument("--split", default="test", choices=("train", "test"), help="which split")
    add_postprocess(p)
    p.add_argument(
        "--gsd",
        type=float,
        default=None,
        help="ground sample distance in m/px of images without a CRS, when the model knows "
        "its ground resolution: they are resampled to it (default: a GeoTIFF's own; else as they are)",
    )
    add_adapt(p, "the split's images")
    p.add_argument("--json", action="store_true", help="print one JSON object with the metrics")
    p.set_defaults(run=cmd_evaluate)

    p = sub.add_parser(
        "predict",
        formatter_class=Formatter,
        help="predict roof masks of images",
        description="Write OUT_DIR/<name>.png (0/255 roof mask) for every input image, "
        "of any size: large images are predicted tile by tile with overlap "
        "and blended, edges included. A georeferenced orthophoto (GeoTIFF, "
        "COG, JPEG 2000, VRT) is read window by window in bounded memory "
        "and gives OUT_DIR/<name>.tif on exactly its grid (CRS, transform, "
        "size), tiled, compressed, with overviews; no-data pixels stay no "
        "data.",
    )
    p.add_argument(
        "inputs", nargs="+", metavar="INPUT", type=Path, help="image files or folders of images"
    )
    p.add_argument("--model", required=True, type=Path, help="model file (.safetensors)")
    p.add_argument("--out", required=True, type=Path, help="output folder (created)")
    add_postprocess(p)
    p.add_argument(
        "--composite",
        action="store_true",
        help="also write <name>_composite.png: input | label (if found) | prediction",
    )
    p.add_argument(
        "--tta", action="store_true", help="average with flipped copies (slower, smoother)"
    )
    p.add_argument(
        "--probabilities",
        action="store_true",
        help="orthophotos: also write NAME_probability.tif (uint8: p * 254, 255 = no data)",
    )
    p.add_argument("--cog", action="store_true", help="orthophotos: write Cloud-Optimised GeoTIFFs")
    p.add_argument(
        "--bands",
        default=None,
        metavar="R,G,B",
        help="orthophotos: the bands to read as red, green, blue (e.g. 1,2,3 of RGBNIR)",
    )
    p.add_argument(
        "--polygons",
        nargs="?",
        const="gpkg",
        choices=("gpkg", "geojson"),
        default=None,
        help="also write one polygon per building with its area: NAME.gpkg (the "
        "image's CRS) or NAME.geojson (WGS 84, georeferenced images only)",
    )
    add_polygon_options(
        p,
        DEFAULT_SIMPLIFY,
        "ground sample distance in m/px of images without a CRS: areas in m², and a model "
        "that knows its ground resolution sees them resampled to it",
    )
    p.add_argument(
        "--engine",
        default="torch",
        choices=("torch", "onnxruntime"),
        help="what runs the network: torch, or onnxruntime (the model exported to ONNX "
        "first, float32; about 3.7x faster than torch on the development CPU, "
        "benchmarks/onnx_engine.py; needs the onnx extra)",
    )
    add_adapt(p, "a sample of the inputs (torch engine)")
    p.add_argument("--json", action="store_true", help="print one JSON object listing the outputs")
    p.set_defaults(run=cmd_predict)
