"""``rooftop vectorize``, ``rooftop rasterize`` and ``rooftop export-onnx``: buildings as polygons,
footprints as labels, and models QGIS runs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from core.cli.output import Formatter, ProgressBar, Reporter, format_area
from core.cli.predict_commands import add_polygon_options


def cmd_vectorize(args: argparse.Namespace, out: Reporter) -> dict[str, Any]:
    from core.vector.mask_files import vectorize_mask_file

    with ProgressBar(out, "vectorising", "px") as bar:
        done = vectorize_mask_file(
            args.mask,
            args.out,
            probability_path=args.probability,
            min_area=args.min_area,
            simplify=args.simplify,
            regularize=args.regularize,
            gsd=args.gsd,
            on_progress=bar,
        )
    out.line(
        f"{args.mask} -> {done.path}: {done.buildings} buildings, "
        f"{format_area(done.total_area, done.unit)} of roof"
    )
    return {
        "polygons": str(done.path),
        "buildings": done.buildings,
        "roof_area": done.total_area,
        "area_unit": f"{done.unit}2",
    }


def cmd_rasterize(args: argparse.Namespace, out: Reporter) -> dict[str, Any]:
    from core.vector.mask_files import rasterize_footprints_file

    with ProgressBar(out, "rasterising", "px") as bar:
        done = rasterize_footprints_file(args.image, args.footprints, args.out, on_progress=bar)
    out.line(
        f"{args.footprints} -> {done.path}: {done.footprints} footprints, "
        f"{done.roof_fraction:.1%} of the image is roof"
    )
    return {
        "label": str(done.path),
        "footprints": done.footprints,
        "roof_fraction": done.roof_fraction,
    }


def cmd_export_onnx(args: argparse.Namespace, out: Reporter) -> dict[str, Any]:
    from core.onnx_export import STRETCH_NOTE, export_onnx

    done = export_onnx(
        args.model,
        args.out,
        tile=args.tile,
        overlap=args.overlap,
        resolution_cm=args.resolution,
        stretch_from=args.stretch_from,
    )
    note = (
        ""
        if "resolution" in done.metadata
        else (
            "; no resolution is known: pass --resolution CM_PER_PX so QGIS resamples orthophotos "
            "to the training imagery's"
        )
    )
    if done.metadata.get("rooftop_input_stretch", "none") != "none":
        stretch_from = done.metadata.get("rooftop_stretch_from")
        note += (
            STRETCH_NOTE + " (--stretch-from ORTHOPHOTO writes that one's stretch into the model)"
            if stretch_from is None
            else f"; the input stretch of {stretch_from} is in its standardization"
        )
    out.line(
        f"{args.model} -> {done.path} (Deepness Segmentor, {done.tile} px tiles, "
        f"threshold {done.metadata['seg_thresh']:.2f}){note}"
    )
    return {"onnx": str(done.path), "metadata": done.metadata}


def add_commands(sub: Any) -> None:
    p = sub.add_parser(
        "vectorize",
        formatter_class=Formatter,
        help="turn a roof mask into building polygons with areas",
        description="One polygon per building (holes kept; roofs that touch stay "
        "one building unless the mask separates them) with id, area_m2, "
        "perimeter_m and mean_probability, written as a GeoPackage (the "
        "mask's CRS) or GeoJSON (WGS 84) by the suffix of --out. A "
        "GeoTIFF mask is read strip by strip, in bounded memory.",
    )
    p.add_argument(
        "mask",
        metavar="MASK",
        type=Path,
        help="roof mask: a GeoTIFF from `rooftop predict` or a PNG (non-zero = roof)",
    )
    p.add_argument("--out", required=True, type=Path, help="FILE.gpkg or FILE.geojson")
    p.add_argument(
        "--probability",
        type=Path,
        default=None,
        help="the probability GeoTIFF of the mask (predict --probabilities): mean "
        "probability per building",
    )
    add_polygon_options(p, 0.5)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=cmd_vectorize)

    p = sub.add_parser(
        "rasterize",
        formatter_class=Formatter,
        help="burn building footprints into a label on an image's grid",
        description="Reproject the footprints (GeoPackage, GeoJSON or Shapefile) to "
        "the image's CRS and burn them in (pixel centres inside): a "
        "GeoTIFF label on the image's grid, or a PNG (0/255).",
    )
    p.add_argument("--image", required=True, type=Path, help="the orthophoto (or image)")
    p.add_argument(
        "--footprints",
        required=True,
        type=Path,
        help="building footprints: .gpkg, .geojson or .shp",
    )
    p.add_argument("--out", required=True, type=Path, help="LABEL.tif or LABEL.png")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=cmd_rasterize)

    p = sub.add_parser(
        "export-onnx",
        formatter_class=Formatter,
        help="export a model to ONNX for QGIS (Deepness plugin) and onnxruntime",
        description="Write an ONNX model (input RGB / 255, NCHW, TILE x TILE, dynamic "
        "batch; output the roof probability) with the metadata the QGIS "
        "Deepness plugin reads: model type, class names, tile size and "
        "overlap, threshold, resolution, normalisation.",
    )
    p.add_argument("model", metavar="MODEL", type=Path, help="model file (.safetensors)")
    p.add_argument("--out", required=True, type=Path, help="FILE.onnx")
    p.add_argument("--tile", type=int, default=512, help="tile size in pixels")
    p.add_argument("--overlap", type=int, default=64, help="tile overlap in pixels")
    p.add_argument(
        "--resolution",
        type=float,
        default=None,
        metavar="CM_PER_PX",
        help="ground resolution of the training imagery in cm per pixel (default: "
        "the model's, when it knows it)",
    )
    p.add_argument(
        "--stretch-from",
        type=Path,
        default=None,
        metavar="IMAGE",
        help="for a model trained with --input-stretch percentile: the orthophoto it will run "
        "on in QGIS, whose stretch is written as the model's standardization",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=cmd_export_onnx)
