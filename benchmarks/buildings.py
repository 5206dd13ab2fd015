"""Buildings of a whole orthophoto: ``rooftop vectorize`` on a 30,000 x 30,000 mask GeoTIFF.

    python benchmarks/buildings.py [--side 30000]

The mask is the synthetic demo scene's true roof mask mosaicked exactly as
``benchmarks/orthophoto.py`` mosaics its image (the 2048 px tile flipped per tile; UTM 33N,
0.25 m pixels), so it stands for the prediction of a perfect model on that orthophoto (an
untrained model predicts no roof). In a fresh subprocess each, vectorised strip by strip with
``core.vector.mask_files.vectorize_mask_file`` without simplification and with the default one
(0.5 m): the number of buildings, their summed ``area_m2`` against the mask's roof pixels times the
pixel area, the time and the peak resident memory.

Prints ONE JSON object on stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import CACHE_DIR, REPO, emit, machine, note, rnd  # noqa: E402
from orthophoto import make_geotiff  # noqa: E402

PIXEL_AREA = 0.25 * 0.25  # m², the mosaic's 0.25 m pixels

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, {repo!r})
import numpy as np
from core.raster import open_raster
from core.vector.mask_files import vectorize_mask_file
roof = 0
with open_raster({mask!r}, bands=(1,)) as src:
    for row in range(0, src.height, 2048):
        rgb, valid = src.read_window(row, 0, min(2048, src.height - row), src.width)
        roof += int(((rgb[..., 0] > 0) & valid).sum())
start = time.perf_counter()
done = vectorize_mask_file({mask!r}, {out!r}, simplify={simplify})
print(json.dumps({{"seconds": time.perf_counter() - start, "buildings": done.buildings,
                  "area_m2": done.total_area, "roof_pixels": roof,
                  "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}}))
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--side", type=int, default=30000)
    parser.add_argument("--work", type=Path, default=CACHE_DIR / "orthophoto")
    args = parser.parse_args(argv)

    import numpy as np

    from core.synthetic import make_scene

    note("making the 2048 px scene's mask ...")
    _image, mask = make_scene(2048, seed=0)
    tile = np.repeat((mask * 255).astype(np.uint8)[..., None], 3, axis=2)
    source = make_geotiff(args.work / f"roofs_{args.side}.tif", args.side, scene=tile)
    result = {
        "benchmark": "buildings",
        "machine": machine(),
        "side": args.side,
        "mask": "the demo scene's true roof mask, mosaicked as benchmarks/orthophoto.py",
    }
    for simplify in (0.0, 0.5):
        out = args.work / f"roofs_{args.side}_s{simplify}.gpkg"
        note(f"vectorising with simplify {simplify} m ...")
        code = CHILD.format(repo=str(REPO), mask=str(source), out=str(out), simplify=simplify)
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(done.stderr[-3000:])
        run = json.loads(done.stdout.strip().splitlines()[-1])
        pixel_area = run["roof_pixels"] * PIXEL_AREA
        result[f"simplify_{simplify}"] = {
            "buildings": run["buildings"],
            "area_m2": rnd(run["area_m2"], 1),
            "mask_area_m2": rnd(pixel_area, 1),
            "area_difference": rnd(abs(run["area_m2"] - pixel_area) / pixel_area, 5),
            "seconds": rnd(run["seconds"], 1),
            "peak_gb": rnd(run["peak_gb"], 2),
            "mpx_s": rnd(args.side**2 / 1e6 / run["seconds"], 2),
        }
    emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
