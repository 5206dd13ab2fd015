"""The ``rooftop`` command line: the same core functions the desktop app calls.

    rooftop demo OUT_DIR                      a synthetic aerial scene and its roof mask
    rooftop generate --image I --label L --out DATASET
    rooftop train --data DATASET --models MODELS
    rooftop evaluate --data DATASET --model MODEL
    rooftop predict --model MODEL --out OUT INPUT...

A user's mistake (a missing file, a corrupt image, a pickled checkpoint...) prints one line,
``rooftop COMMAND: error: FILE: what is wrong``, and exits with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from core import __version__
from core.errors import ConfigError, RooftopError
from core.progress import Progress, Stopped

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def _fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:d}:{s:02d}"


class Reporter:
    """Progress for people: a live line on a terminal, plain lines otherwise (e.g. in logs)."""

    def __init__(self, stream=None, quiet: bool = False, bars: bool = True):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.live = hasattr(self.stream, "isatty") and self.stream.isatty()
        #: progress bars (:class:`ProgressBar`): only on a terminal, and not with --json
        self.bars = bars and self.live and not quiet
        self._last_len = 0
        self._last_time = 0.0

    def line(self, text: str) -> None:
        if self.quiet:
            return
        self._clear()
        print(text, file=self.stream, flush=True)

    def status(self, text: str) -> None:
        """A transient line (only on a terminal, at most ten times a second)."""
        if self.quiet or not self.live:
            return
        now = time.monotonic()
        if now - self._last_time < 0.1:
            return
        self._last_time = now
        pad = max(0, self._last_len - len(text))
        self.stream.write("\r" + text + " " * pad)
        self.stream.flush()
        self._last_len = len(text)

    def _clear(self) -> None:
        if self.live and self._last_len:
            self.stream.write("\r" + " " * self._last_len + "\r")
            self._last_len = 0


class ProgressBar:
    """``core.progress.Progress`` events shown as a tqdm bar on the reporter's stream (counts,
    rate and ETA); nothing at all unless the reporter shows bars. The bar is cleared when done.

        with ProgressBar(out, "predicting", "files") as bar:
            predict_files(..., on_progress=bar)
    """

    def __init__(self, out: Reporter, desc: str, unit: str):
        self.out, self.desc, self.unit = out, desc, unit
        self._bar: Any = None

    def __call__(self, event: Any) -> None:
        if not isinstance(event, Progress) or not self.out.bars:
            return
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=event.total, desc=self.desc, unit=self.unit,
                             file=self.out.stream, leave=False, dynamic_ncols=True)
        if event.item:
            self._bar.set_postfix_str(Path(event.item).name, refresh=False)
        self._bar.update(event.done - self._bar.n)

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _bar(done: int, total: int, width: int = 24) -> str:
    filled = int(width * done / max(total, 1))
    return "[" + "#" * filled + "." * (width - filled) + f"] {done}/{total}"


# --------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------

def cmd_demo(args: argparse.Namespace, out: Reporter) -> dict[str, Any]:
    from core.synthetic import write_demo

    start = time.monotonic()
    image_path, label_path = write_demo(args.out_dir, size=args.size, seed=args.seed)
    out.line(f"wrote {image_path} and {label_path} ({args.size} x {args.size}, seed {args.seed}) "
             f"in {time.monotonic() - start:.1f} s")
    return {"image": str(image_path), "label": str(label_path)}


def _parse_rotations(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.replace(" ", "").split(",") if v != "")
    except ValueError:
        raise ConfigError(f"--rotations takes degrees separated by commas, like 0,90,180; got {text!r}") from None
    if not values or any(v % 90 for v in values):
        raise ConfigError(f"--rotations must be multiples of 90 degrees, like 0,90,180; got {text!r}")
    return values


def cmd_generate(args: argparse.Namespace, out: Reporter) -> dict[str, Any]:
    from core.generate import DEFAULT_PATCHES, GenerateConfig, PatchSpec, generate_dataset

    patches = tuple(PatchSpec.parse(p) for p in args.patch) if args.patch else DEFAULT_PATCHES
    if args.resize is not None and args.resize < 16:
        raise ConfigError(f"--resize must be at least 16 px (or 0 to keep the window size), got {args.resize}")
    if not 0 <= args.test_fraction < 1:
        raise ConfigError(f"--test-fraction must be from 0 up to 1, got {args.test_fraction}")
    config = GenerateConfig(patches=patches, resize=args.resize or None,
                            rotations=_parse_rotations(args.rotations),
                            test_fraction=args.test_fraction, seed=args.seed, overwrite=args.overwrite)
    start = time.monotonic()
    with ProgressBar(out, "generating", "patches") as bar:
        result = generate_dataset(args.image, args.label, args.out, config, on_progress=bar)
    share = result.n_test / max(1, result.n_train + result.n_test)
    out.line(f"wrote {result.n_train} train and {result.n_test} test patches ({share:.1%} test) to "
             f"{result.dataset_dir} in {time.monotonic() - start:.1f} s; manifest {result.manifest_path}")
    if result.n_test and abs(share - config.test_fraction) > 0.05:
        out.line(f"note: the test share is {share:.0%}, not the {config.test_fraction:.0%} asked for: "
                 "the split keeps whole windows on one side of a band of the image, and this image "
                 "is small for its windows (smaller --patch sizes get closer)")
    return {"dataset": str(result.dataset_dir), "train": result.n_train, "test": result.n_test,
            "manifest": str(result.manifest_path)}


class _StopOnInterrupt:
    """First Ctrl+C asks the training loop to stop after the current batch (and save);
    a second one interrupts at once."""

    def __init__(self, out: Reporter):
        self.out = out
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> Callable[[], bool]:
        def handler(signum, frame):  # noqa: ARG001
            if self.requested:
                raise KeyboardInterrupt
            self.requested = True
            self.out.line("interrupted: finishing this batch and saving the model "
                          "(press Ctrl+C again to abort without saving)")

        try:
            self._previous = signal.signal(signal.SIGINT, handler)
        except ValueError:  # not in the main thread
            self._previous = None
        return lambda: self.requested

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _of(epoch: int, epochs: int | None, width: int = 0) -> str:
    """``"  3/100"``, or ``"  3"`` when only the time budget ends the run."""
    return f"{epoch:>{width}}" if epochs is None else f"{epoch:>{width}}/{epochs}"


def cmd_train(args: argparse.Namespace, out: Reporter) -> dict[str, Any]:
    from core.training.config import BatchProgress, EpochResult, TrainConfig, TrainingStarted
    from core.training.loop import train

    config = TrainConfig(arch=args.arch, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                         loss=args.loss, val_fraction=args.val_fraction, device=args.device,
                         max_minutes=args.max_minutes, seed=args.seed, crop_size=args.crop_size,
                         samples_per_epoch=args.samples_per_epoch, optimizer=args.optimizer,
                         weight_decay=args.weight_decay, schedule=args.schedule,
                         augment=not args.no_augment, balance=args.balance,
                         tune_threshold=not args.no_tune_threshold, precision=args.precision)

    def progress(event: Any) -> None:
        if isinstance(event, TrainingStarted):
            out.line(f"training {config.arch} ({event.parameters:,} weights) on {event.device} "
                     f"({event.precision}): "
                     f"{event.train_images} train / {event.val_images} validation images, "
                     f"{event.crop_size} px crops; will save {event.model_path}")
        elif isinstance(event, BatchProgress):
            out.status(f"epoch {_of(event.epoch, event.epochs)} {_bar(event.batch, event.batches)} "
                       f"loss {event.loss:.4f}")
        elif isinstance(event, EpochResult):
            val = ("val loss -      val IoU -    " if event.val_loss is None else
                   f"val loss {event.val_loss:.4f}  val IoU {event.val_iou:.3f}")
            partial = "" if event.complete else " (partial)"
            out.line(f"epoch {_of(event.epoch, event.epochs, 3)}{partial}  train loss {event.train_loss:.4f}  "
                     f"{val}  {event.seconds:.1f} s  ETA {_fmt_seconds(event.eta_seconds)}")

    with _StopOnInterrupt(out) as should_stop:
        result = train(args.data, args.models, config, on_progress=progress, should_stop=should_stop,
                       resume_from=args.resume, init_from=args.init)
    why = {None: "finished", "time": "time limit reached", "user": "stopped by user"}[result.stopped]
    iou = "-" if result.val_iou is None else f"{result.val_iou:.3f}"
    out.line(f"{why}: saved {result.model_path} (best epoch {result.best_epoch}, val IoU {iou}, "
             f"{result.samples_seen} samples, {result.seconds:.1f} s)")
    return result.as_dict()


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


# --------------------------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------------------------

class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from core.training.config import ARCHITECTURE_CHOICES, PRECISIONS
    from core.training.config import DEFAULT_RECIPE as recipe

    parser = argparse.ArgumentParser(
        prog="rooftop", formatter_class=_Formatter,
        description="Find building roofs in aerial images: make a dataset from a large image and "
                    "its roof mask, train a pixel-classification CNN, evaluate it and predict "
                    "roof masks. The desktop app is `rooftop-studio`.",
        epilog="Example:\n  rooftop demo work/scene\n  rooftop generate --image work/scene/image.png "
               "--label work/scene/labels.png --out work/dataset\n  rooftop train --data work/dataset "
               "--models work/models --max-minutes 5\n  rooftop evaluate --data work/dataset --model "
               "work/models/model_v1.safetensors\n  rooftop predict --model "
               "work/models/model_v1.safetensors --out work/pred --composite work/dataset/test/data")
    parser.add_argument("--version", action="version", version=f"rooftop {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("demo", formatter_class=_Formatter,
                       help="write a synthetic aerial scene (image.png) and its roof mask (labels.png)",
                       description="Write OUT_DIR/image.png (RGB) and OUT_DIR/labels.png (0/255 roof "
                                   "mask): a procedural suburb seen from above. Same seed, same pixels.")
    p.add_argument("out_dir", metavar="OUT_DIR", type=Path, help="folder to write into (created)")
    p.add_argument("--size", type=int, default=2048, help="width and height in pixels (64 to 20000)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the scene")
    p.set_defaults(run=cmd_demo)

    p = sub.add_parser("generate", formatter_class=_Formatter,
                       help="cut a large image and its mask into a train/test patch dataset",
                       description="Slide square windows over the image (each rotation, each patch "
                                   "size), resize the patches, and write DATASET/{train,test}/{data,"
                                   "label}/NNNNN.png plus DATASET/manifest.csv. The train/test split "
                                   "is spatial: no ground pixel is in both splits.")
    p.add_argument("--image", required=True, type=Path, help="the large aerial image (TIFF, PNG, JPEG)")
    p.add_argument("--label", required=True, type=Path, help="its roof mask (any non-zero value = roof)")
    p.add_argument("--out", required=True, type=Path, help="dataset folder to create")
    p.add_argument("--patch", action="append", metavar="SIZE:STRIDE_FRACTION",
                   help="window size and stride as a fraction of it; repeat for several "
                        "(default: 512:0.25 1024:0.25 256:0.5)")
    p.add_argument("--resize", type=int, default=512, help="resize every patch to this size (0 = keep)")
    p.add_argument("--rotations", default="0,90,180", help="rotations in degrees (multiples of 90)")
    p.add_argument("--test-fraction", type=float, default=0.15, help="share of patches for the test split")
    p.add_argument("--seed", type=int, default=0, help="random seed of the split")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset in --out")
    p.set_defaults(run=cmd_generate)

    archs = "; ".join(f"{k}: {v}" for k, v in ARCHITECTURE_CHOICES)
    p = sub.add_parser("train", formatter_class=_Formatter, help="train a model on a dataset's train split",
                       description="Train on DATASET/train (a share of it held out for validation; the "
                                   "test split is never used) and save MODELS/model_vN.safetensors "
                                   "with the next free N. Ctrl+C stops after the current batch and "
                                   f"still saves. Architectures: {archs}. The original "
                                   "exercise's recipe: --arch prescribed --optimizer adam --lr 1e-4 "
                                   "--loss bce --schedule constant --batch-size 32 --no-augment "
                                   "--balance 0 --no-tune-threshold --weight-decay 0.")
    p.add_argument("--data", required=True, type=Path, help="dataset folder (from `rooftop generate`)")
    p.add_argument("--models", required=True, type=Path, help="folder for model_vN.safetensors (created)")
    p.add_argument("--arch", default=recipe["arch"], help="architecture: " + ", ".join(k for k, _v in ARCHITECTURE_CHOICES))
    p.add_argument("--epochs", type=_positive_int, default=None,
                   help="number of epochs (default: as many as --max-minutes allows, or "
                        "100 without a time budget; with both, whichever ends first)")
    p.add_argument("--batch-size", type=_positive_int, default=recipe["batch_size"], help="images per batch")
    p.add_argument("--lr", type=float, default=recipe["lr"], help="peak learning rate")
    p.add_argument("--loss", default=recipe["loss"], choices=("bce", "dice", "bce+dice"), help="loss function")
    p.add_argument("--optimizer", default=recipe["optimizer"], choices=("adamw", "adam"), help="optimizer")
    p.add_argument("--weight-decay", type=float, default=recipe["weight_decay"], help="weight decay (AdamW: decoupled)")
    p.add_argument("--schedule", default=recipe["schedule"], choices=("cosine", "constant"),
                   help="learning rate after a 5 %% warm-up: cosine decay over the run (epochs, "
                        "or --max-minutes when that ends first) or constant")
    p.add_argument("--no-augment", action="store_true",
                   help="no augmentation (default: scale, flips, 90-degree rotations, colour, blur, noise)")
    p.add_argument("--balance", type=float, default=0.5,
                   help="probability of drawing again a crop with under 5 %% roof (0 = off)")
    p.add_argument("--no-tune-threshold", action="store_true",
                   help="keep the threshold 0.5 (default: tuned on validation, stored in the model)")
    p.add_argument("--val-fraction", type=float, default=0.1,
                   help="share of the train split held out for validation")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="arithmetic: auto (bfloat16 mixed precision on a GPU or a CPU with native bfloat16, "
                        "else float32), fp32 or bf16")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="time budget: train until this many minutes are used (whatever the "
                        "dataset's size; the schedule anneals over it), then save the model")
    p.add_argument("--crop-size", type=int, default=256, help="training crop size in pixels")
    p.add_argument("--samples-per-epoch", type=_positive_int, default=None,
                   help="training crops per epoch (default: one per training image, at least 64)")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--resume", type=Path, default=None, metavar="MODEL",
                   help="continue training from this checkpoint (optimizer state included)")
    p.add_argument("--init", type=Path, default=None, metavar="MODEL",
                   help="start a new run from this model's weights (its architecture, a fresh "
                        "optimizer and schedule): fine-tune an earlier model on new labels")
    p.add_argument("--json", action="store_true", help="print one JSON object with the model path and history")
    p.set_defaults(run=cmd_train)

    def add_postprocess(p: argparse.ArgumentParser) -> None:
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

    p = sub.add_parser("evaluate", formatter_class=_Formatter, help="score a model on a dataset split",
                       description="Loss, IoU, F1, precision, recall and pixel accuracy, each summed "
                                   "over all pixels of the split (not averaged per image).")
    p.add_argument("--data", required=True, type=Path, help="dataset folder")
    p.add_argument("--model", required=True, type=Path, help="model file (.safetensors)")
    p.add_argument("--split", default="test", choices=("train", "test"), help="which split")
    add_postprocess(p)
    p.add_argument("--json", action="store_true", help="print one JSON object with the metrics")
    p.set_defaults(run=cmd_evaluate)

    p = sub.add_parser("predict", formatter_class=_Formatter, help="predict roof masks of images",
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    want_json = getattr(args, "json", False)
    out = Reporter(bars=not want_json)
    try:
        result = args.run(args, out)
    except RooftopError as exc:
        out.line(f"rooftop {args.command}: error: {exc}")
        return EXIT_USER_ERROR
    except Stopped as exc:
        out.line(f"rooftop {args.command}: {exc}")
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        out.line(f"rooftop {args.command}: interrupted")
        return EXIT_INTERRUPTED
    except MemoryError:
        out.line(f"rooftop {args.command}: error: not enough memory (try smaller --tile or --batch-size)")
        return 1
    if want_json:
        print(json.dumps(result, indent=None, default=str), flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
