"""The ``rooftop`` command line: the same core functions the desktop app calls.

    rooftop demo OUT_DIR                      a synthetic aerial scene and its roof mask
    rooftop generate --image I --label L --out DATASET
    rooftop train --data DATASET --models MODELS
    rooftop evaluate --data DATASET --model MODEL
    rooftop predict --model MODEL --out OUT INPUT...
    rooftop vectorize MASK --out BUILDINGS.gpkg
    rooftop rasterize --image ORTHO --footprints F --out LABEL.tif
    rooftop export-onnx MODEL --out MODEL.onnx

A user's mistake (a missing file, a corrupt image, a pickled checkpoint...) prints one line,
``rooftop COMMAND: error: FILE: what is wrong``, and exits with status 2; no traceback. One module
per group of commands, each with its ``add_commands(sub)``; ``output`` prints.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from core import __version__
from core.cli import data_commands, geo_commands, predict_commands, train_command
from core.cli.output import EXIT_INTERRUPTED, EXIT_USER_ERROR, Formatter, Reporter, launch_rank
from core.errors import RooftopError
from core.progress import Stopped


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rooftop",
        formatter_class=Formatter,
        description="Find building roofs in aerial images: make a dataset from a large image and "
        "its roof mask, train a pixel-classification CNN, evaluate it and predict "
        "roof masks. The desktop app is `rooftop-studio`.",
        epilog="Example:\n  rooftop demo work/scene\n  rooftop generate --image work/scene/image.png "
        "--label work/scene/labels.png --out work/dataset\n  rooftop train --data work/dataset "
        "--models work/models --max-minutes 5\n  rooftop evaluate --data work/dataset --model "
        "work/models/model_v1.safetensors\n  rooftop predict --model "
        "work/models/model_v1.safetensors --out work/pred --composite work/dataset/test/data",
    )
    parser.add_argument("--version", action="version", version=f"rooftop {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    for module in (data_commands, train_command, predict_commands, geo_commands):
        module.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    want_json = getattr(args, "json", False)
    # Under torchrun, rank 0 alone prints progress and --json; every rank prints its errors.
    rank = launch_rank()
    out = Reporter(bars=not want_json, quiet=bool(rank), prefix=f"[rank {rank}] " if rank else "")
    try:
        result = args.run(args, out)
    except RooftopError as exc:
        out.problem(f"rooftop {args.command}: error: {exc}")
        return EXIT_USER_ERROR
    except Stopped as exc:
        out.problem(f"rooftop {args.command}: {exc}")
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        out.problem(f"rooftop {args.command}: interrupted")
        return EXIT_INTERRUPTED
    except MemoryError:
        out.problem(
            f"rooftop {args.command}: error: not enough memory (try smaller --tile or --batch-size)"
        )
        return 1
    except RuntimeError as exc:  # torch.distributed's errors: a rank died or stopped answering
        if rank is None:
            raise
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        out.problem(
            f"rooftop {args.command}: error: another process of the launch failed or "
            f"stopped answering ({first})"
        )
        return 1
    if want_json and not rank:
        print(json.dumps(result, indent=None, default=str), flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
