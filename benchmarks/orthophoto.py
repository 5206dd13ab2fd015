"""Whole-orthophoto prediction: peak memory at 30,000 px, windowed against in-memory throughput.

    python benchmarks/orthophoto.py [--side 30000] [--compare-side 10000] [--exact-side 4096]

1. Makes a ``--side`` x ``--side`` RGB GeoTIFF (tiled 512, DEFLATE, UTM zone 33N, 0.25 m pixels)
   from the synthetic demo scene (a 2048 px scene mosaicked with flips; cached in the benchmark
   cache folder), then predicts it the way ``rooftop predict`` does for a georeferenced input
   (``core.orthophoto.predict_raster``, the defaults: tile 512, overlap 64, precision auto,
   threshold 0.5) with the default architecture (untrained: weights do not change the cost) in a
   fresh subprocess, and reports its peak resident memory (``ru_maxrss``: the whole process,
   torch included), wall time and megapixels per second.
2. On a ``--compare-side`` image, in the same run: the in-memory path (read the whole image,
   ``core.predict.predict_probabilities``, ``to_mask``) against the windowed path, each in its own
   subprocess, same model and defaults: the throughput ratio windowed / in-memory (target >= 0.9).
3. On an ``--exact-side`` image: the windowed mask equals the in-memory mask pixel for pixel
   (fp32 and the default precision).

Prints ONE JSON object on stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import CACHE_DIR, REPO, demo_image, emit, machine, note, rnd  # noqa: E402

TARGETS = {"peak_gb_30000": 2.0, "windowed_over_in_memory": 0.9}
CRS = "EPSG:32633"


def make_geotiff(path: Path, side: int, scene=None) -> Path:
    """A ``side`` x ``side`` GeoTIFF mosaicked from the 2048 px demo scene (flipped per tile);
    ``scene`` another ``(2048, 2048, 3)`` tile to mosaic (the scene's roof mask, for buildings)."""
    import numpy as np
    import rasterio
    from affine import Affine

    if path.is_file():
        return path
    scene = demo_image(2048) if scene is None else scene
    tile = scene.shape[0]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial.tif")
    profile = dict(
        driver="GTiff",
        width=side,
        height=side,
        count=3,
        dtype="uint8",
        crs=CRS,
        transform=Affine(0.25, 0, 500_000, 0, -0.25, 5_000_000),
        tiled=True,
        blockxsize=512,
        blockysize=512,
        compress="deflate",
        bigtiff="IF_SAFER",
        photometric="RGB",
    )
    note(f"writing a {side} x {side} GeoTIFF to {path} ...")
    started = time.perf_counter()
    with rasterio.open(tmp, "w", **profile) as ds:
        for row in range(0, side, 512):
            rows = min(512, side - row)
            strip = np.empty((rows, side, 3), np.uint8)
            for r in range(rows):
                y = row + r
                ty, sy = divmod(y, tile)
                src = scene[sy] if ty % 2 == 0 else scene[tile - 1 - sy]
                line = strip[r]
                for tx in range(0, side, tile):
                    part = src if (tx // tile + ty) % 2 == 0 else src[::-1]
                    n = min(tile, side - tx)
                    line[tx : tx + n] = part[:n]
            ds.write(np.moveaxis(strip, -1, 0), window=rasterio.windows.Window(0, row, side, rows))
    tmp.rename(path)
    note(f"  written in {time.perf_counter() - started:.0f} s ({path.stat().st_size / 1e9:.2f} GB)")
    return path


CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, {repo!r})
import torch
from core.checkpoint import LoadedModel
from core.models import build_model
from core.training.config import DEFAULT_ARCH
torch.manual_seed(0)
model = build_model(DEFAULT_ARCH).eval()
loaded = LoadedModel(model=model, arch=DEFAULT_ARCH, arch_params={{}}, metadata={{}}, path=None,
                     threshold=0.5)
mode, source, out, precision = {mode!r}, {source!r}, {out!r}, {precision!r}
started = time.perf_counter()
if mode == "windowed":
    from core.orthophoto import predict_raster
    result = predict_raster(loaded, source, out, precision=precision)
    roof = result.roof_fraction
else:
    import numpy as np
    from core.io import write_mask
    from core.postprocess import to_mask
    from core.predict import predict_probabilities
    from core.raster import open_raster
    with open_raster(source) as src:
        image, _valid = src.read()
    prob = predict_probabilities(model, image, precision=precision)
    mask = to_mask(prob, 0.5)
    np.save(out + "/mask.npy", mask)
    roof = float(mask.mean())
seconds = time.perf_counter() - started
print(json.dumps({{"seconds": seconds, "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
                  "roof_fraction": roof}}))
"""


def run_child(mode: str, source: Path, out: Path, precision: str = "auto") -> dict:
    out.mkdir(parents=True, exist_ok=True)
    code = CHILD.format(
        repo=str(REPO), mode=mode, source=str(source), out=str(out), precision=precision
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{mode} run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def exact(source: Path, work: Path, precision: str) -> dict:
    import numpy as np
    import rasterio

    windowed = run_child("windowed", source, work / f"w_{precision}", precision)
    in_memory = run_child("in_memory", source, work / f"m_{precision}", precision)
    with rasterio.open(work / f"w_{precision}" / f"{source.stem}.tif") as ds:
        a = ds.read(1) > 0
    b = np.load(work / f"m_{precision}" / "mask.npy")
    return {
        "identical": bool(np.array_equal(a, b)),
        "differing_pixels": int((a != b).sum()),
        "windowed_s": rnd(windowed["seconds"], 1),
        "in_memory_s": rnd(in_memory["seconds"], 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--side", type=int, default=30000)
    parser.add_argument("--compare-side", type=int, default=10000)
    parser.add_argument("--exact-side", type=int, default=4096)
    parser.add_argument("--work", type=Path, default=CACHE_DIR / "orthophoto")
    args = parser.parse_args(argv)
    work = args.work
    result: dict = {
        "benchmark": "orthophoto",
        "machine": machine(),
        "targets": TARGETS,
        "model": "default architecture, untrained (cost does not depend on weights)",
    }

    exact_src = make_geotiff(work / f"scene_{args.exact_side}.tif", args.exact_side)
    note(f"exactness at {args.exact_side} px (fp32 and auto) ...")
    result["exact"] = {p: exact(exact_src, work / "exact", p) for p in ("fp32", "auto")}

    compare_src = make_geotiff(work / f"scene_{args.compare_side}.tif", args.compare_side)
    note(f"windowed against in memory at {args.compare_side} px ...")
    windowed = run_child("windowed", compare_src, work / "compare_w")
    in_memory = run_child("in_memory", compare_src, work / "compare_m")
    mpx = args.compare_side**2 / 1e6
    result["compare"] = {
        "side": args.compare_side,
        "windowed": {
            "seconds": rnd(windowed["seconds"], 1),
            "mpx_s": rnd(mpx / windowed["seconds"], 2),
            "peak_gb": rnd(windowed["peak_gb"], 2),
        },
        "in_memory": {
            "seconds": rnd(in_memory["seconds"], 1),
            "mpx_s": rnd(mpx / in_memory["seconds"], 2),
            "peak_gb": rnd(in_memory["peak_gb"], 2),
        },
        "windowed_over_in_memory": rnd(in_memory["seconds"] / windowed["seconds"], 3),
    }

    if args.side:
        big_src = make_geotiff(work / f"scene_{args.side}.tif", args.side)
        note(f"predicting the {args.side} px orthophoto (windowed) ...")
        big = run_child("windowed", big_src, work / "big")
        mpx = args.side**2 / 1e6
        result["big"] = {
            "side": args.side,
            "seconds": rnd(big["seconds"], 1),
            "mpx_s": rnd(mpx / big["seconds"], 2),
            "peak_gb": rnd(big["peak_gb"], 2),
            "roof_fraction": rnd(big["roof_fraction"], 4),
            "output_gb": rnd(os.path.getsize(work / "big" / f"{big_src.stem}.tif") / 1e9, 3),
        }
    emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
