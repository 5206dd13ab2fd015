"""Two processes x 1 thread (torchrun, gloo) against 1 process x 2 threads, on the CPU.

    python benchmarks/distributed.py [--minutes 0.5] [--size 3072]

Training: ``rooftop train`` with the defaults a user gets (liteunet, batch 8 a process) on the
demo dataset for ``--minutes`` of time budget each: samples per second (samples seen / training
seconds, validation included). Prediction: ``rooftop predict`` of one ``--size`` px GeoTIFF
orthophoto with the defaults (512 px tiles): megapixels per second over the command's wall time
(start-up included, as a user waits for it). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, demo_dataset, demo_image, emit, machine, note, rnd

BIN = Path(sys.executable).parent


def _env(threads: int) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
    }
    env.update(OMP_NUM_THREADS=str(threads), PYTHONPATH=str(REPO))
    return env


def _command(processes: int, args: list[str]) -> list[str]:
    rooftop = str(BIN / "rooftop")
    if processes == 1:
        return [rooftop, *args]
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return [
        str(BIN / "torchrun"),
        "--nproc-per-node",
        str(processes),
        "--rdzv-backend",
        "c10d",
        "--rdzv-endpoint",
        f"127.0.0.1:{port}",
        rooftop,
        *args,
    ]


def _run(processes: int, threads: int, args: list[str]) -> tuple[dict, float]:
    start = time.perf_counter()
    done = subprocess.run(
        _command(processes, args), capture_output=True, text=True, env=_env(threads), timeout=900
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args[:1])} failed ({done.returncode}): {done.stderr[-2000:]}")
    line = [x for x in done.stdout.splitlines() if x.startswith("{")][-1]
    return json.loads(line), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=0.5, help="training budget of each run")
    parser.add_argument("--size", type=int, default=3072, help="orthophoto side in pixels")
    args = parser.parse_args()
    import numpy as np
    import rasterio
    from affine import Affine

    dataset = demo_dataset()
    setups = {"1x2": (1, 2), "2x1": (2, 1)}
    result: dict = {
        "benchmark": "distributed",
        "machine": machine(),
        "dataset": str(dataset),
        "train_minutes": args.minutes,
        "ortho_px": args.size,
    }
    with tempfile.TemporaryDirectory(prefix="rooftop-dist-bench-") as scratch:
        scratch = Path(scratch)
        train = {}
        for name, (procs, threads) in setups.items():
            note(f"training {procs} process(es) x {threads} thread(s) for {args.minutes} min ...")
            out, _wall = _run(
                procs,
                threads,
                [
                    "train",
                    "--data",
                    str(dataset),
                    "--models",
                    str(scratch / f"models_{name}"),
                    "--device",
                    "cpu",
                    "--max-minutes",
                    str(args.minutes),
                    "--json",
                ],
            )
            train[name] = {
                "samples": out["samples_seen"],
                "seconds": out["seconds"],
                "samples_per_s": rnd(out["samples_seen"] / out["seconds"]),
                "epochs": len(out["history"]),
            }
        train["speedup_2x1_over_1x2"] = rnd(
            train["2x1"]["samples_per_s"] / train["1x2"]["samples_per_s"]
        )
        result["train"] = train

        model = next((scratch / "models_1x2").glob("model_v*.safetensors"))
        image = demo_image(args.size)
        ortho = scratch / "ortho.tif"
        profile = dict(
            driver="GTiff",
            width=args.size,
            height=args.size,
            count=3,
            dtype="uint8",
            crs="EPSG:32633",
            transform=Affine(0.25, 0, 500_000, 0, -0.25, 5_000_000),
            tiled=True,
            blockxsize=512,
            blockysize=512,
            compress="deflate",
        )
        with rasterio.open(ortho, "w", **profile) as ds:
            ds.write(np.moveaxis(image, -1, 0))
        predict = {}
        megapixels = args.size * args.size / 1e6
        for name, (procs, threads) in setups.items():
            note(f"predicting {args.size} px with {procs} process(es) x {threads} thread(s) ...")
            _out, wall = _run(
                procs,
                threads,
                [
                    "predict",
                    "--model",
                    str(model),
                    "--out",
                    str(scratch / f"pred_{name}"),
                    str(ortho),
                    "--device",
                    "cpu",
                    "--json",
                ],
            )
            predict[name] = {"seconds": rnd(wall), "mpx_per_s": rnd(megapixels / wall)}
        a = rasterio.open(scratch / "pred_1x2" / "ortho.tif").read()
        b = rasterio.open(scratch / "pred_2x1" / "ortho.tif").read()
        predict["masks_equal"] = bool(np.array_equal(a, b))
        predict["speedup_2x1_over_1x2"] = rnd(
            predict["2x1"]["mpx_per_s"] / predict["1x2"]["mpx_per_s"]
        )
        result["predict"] = predict
    emit(result)


if __name__ == "__main__":
    main()
