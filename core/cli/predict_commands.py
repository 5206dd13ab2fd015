"""``rooftop evaluate`` and ``rooftop predict``: score a model, predict images and orthophotos."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from core.cli.output import Formatter, ProgressBar, Reporter


def cmd_evaluate(args: argparse.Namespace, out: Reporter) -> dict[str, Any]:
    from core.evaluate import evaluate

    with ProgressBar(out, "evaluating", "images") as bar:
        result = evaluate(args.data, args.model, split=args.split, threshold=args.threshold,
                          dilation=args.dilation, device=args.device, tile=args.tile,
                          overlap=args.overlap, on_progress=bar, precision=args.precision)
    m = result.metrics
    out.line(f"{result.split} split, {result.images} images, threshold {result.threshold}, "
             f"dilation {result.dilation}: IoU {m['iou']:.4f}  F1 {m['f1']:.4f}  precision "
             f"{m['precision']:.4f}  recall {m['recall']:.4f}  accuracy {m['accuracy']:.4f}  "
             f"loss {m['loss']:.4f}")
    return result.as_dict()


def cmd_predict(args: argparse.Namespace, out: Reporter) -> dict[str, Any]:
    from core.predict import predict_files

    with ProgressBar(out, "predicting", "files") as bar:
        results = predict_files(args.model, args.inputs, args.out, threshold=args.threshold,
                                dilation=args.dilation, tile=args.tile, overlap=args.overlap,
                                composite_output=args.composite, device=args.device, tta=args.tta,
                                on_progress=bar, precision=args.precision)
    for r in results:
        extra = f" and {r.composite_path}" if r.composite_path else ""
        out.line(f"{r.source} -> {r.mask_path}{extra} ({r.roof_fraction:.1%} roof)")
    return {"outputs": [{"input": str(r.source), "mask": str(r.mask_path),
                         "composite": str(r.composite_path) if r.composite_path else None,
                         "roof_fraction": r.roof_fraction} for r in results]}


def add_postprocess(p: argparse.ArgumentParser) -> None:
    from core.training.config import PRECISIONS

    p.add_argument("--threshold", type=float, default=None,
                   help="probability threshold (default: the model's own, usually 0.5)")
    p.add_argument("--dilation", type=int, default=0,
                   help="max-pool the probability map with a K x K window first (0 or 1 = off)")
    p.add_argument("--tile", type=int, default=512, help="tile size for large images")
    p.add_argument("--overlap", type=int, default=64, help="overlap between tiles, blended")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="arithmetic: auto (bfloat16 mixed precision on a GPU or a CPU with native bfloat16, "
                    "else float32), fp32 or bf16")



def add_commands(sub: Any) -> None:
    p = sub.add_parser("evaluate", formatter_class=Formatter, help="score a model on a dataset split",
                       description="Loss, IoU, F1, precision, recall and pixel accuracy, each summed "
                                   "over all pixels of the split (not averaged per image).")
    p.add_argument("--data", required=True, type=Path, help="dataset folder")
    p.add_argument("--model", required=True, type=Path, help="model file (.safetensors)")
    p.add_argument("--split", default="test", choices=("train", "test"), help="which split")
    add_postprocess(p)
    p.add_argument("--json", action="store_true", help="print one JSON object with the metrics")
    p.set_defaults(run=cmd_evaluate)

    p = sub.add_parser("predict", formatter_class=Formatter, help="predict roof masks of images",
                       description="Write OUT_DIR/<name>.png (0/255 roof mask) for every input image, "
                                   "of any size: large images are predicted tile by tile with overlap "
                                   "and blended, edges included.")
    p.add_argument("inputs", nargs="+", metavar="INPUT", type=Path, help="image files or folders of images")
    p.add_argument("--model", required=True, type=Path, help="model file (.safetensors)")
    p.add_argument("--out", required=True, type=Path, help="output folder (created)")
    add_postprocess(p)
    p.add_argument("--composite", action="store_true",
                   help="also write <name>_composite.png: input | label (if found) | prediction")
    p.add_argument("--tta", action="store_true", help="average with flipped copies (slower, smoother)")
    p.add_argument("--json", action="store_true", help="print one JSON object listing the outputs")
    p.set_defaults(run=cmd_predict)
