"""The window on a 30,000 x 30,000 orthophoto: time to the overview's first paint, peak memory
while panning at full resolution.

    python benchmarks/orthophoto_gui.py [--side 30000] [--pans 40] [--skip-plain]

Uses the GeoTIFF of ``benchmarks/orthophoto.py`` (``make_geotiff``: tiled 512, DEFLATE, UTM 33N,
0.25 m pixels; written once to the benchmark cache, about a minute) and a copy of it with
internal overviews 2..128 (``build_overviews``, average; made once). For each file, in a fresh
subprocess (offscreen Qt, the real ``ImageCanvas`` at 1600 x 1000 and a
``RasterTileSource`` as the window makes them):

* ``overview_first_paint_s``: from ``set_raster`` (the file not open yet) to the first paint of
  the canvas that draws the overview (a synchronous ``viewport().repaint()`` once it arrives; for
  a file without overviews, its first band), with an empty overview cache;
* ``first_tiles_s``: then zoom 100 % on the centre: until every visible tile is drawn (while the
  overview of a file without overviews may still be reading); ``overview_whole_s``: from
  ``set_raster`` until the whole overview is read;
* ``pan_*``: ``--pans`` scripted pans of 700 px (a serpentine across the raster at 100 %), each
  waiting until its visible tiles are read and drawn: median and max time per pan;
* ``peak_rss_mb``: the process's peak resident memory (``ru_maxrss``) at the end, with
  ``rss_after_pans_mb`` and the tile cache's peak bytes;
* ``reopen_first_paint_s``: the same file opened again in the same window (for a file without
  overviews, from the overview kept by ``core.overview_cache``: ``reopen_from_cache``).

Prints ONE JSON object on stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import CACHE_DIR, REPO, emit, machine, note, rnd  # noqa: E402

TARGETS = {"overview_first_paint_s": 3.0, "peak_rss_mb": 1024}

CHILD = r"""
import json, os, resource, sys, time
sys.path.insert(0, {repo!r})
started = time.perf_counter()
from PySide6.QtWidgets import QApplication
app = QApplication(["bench"])
from rooftop_gui.canvas import ImageCanvas
from rooftop_gui.raster_view import RasterTileSource
from rooftop_gui.workers import TaskRunner

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

runner = TaskRunner()
canvas = ImageCanvas()
canvas.resize(1600, 1000)
canvas.show()
app.processEvents()
cache_dir = {cache_dir!r}  # empty: the first opening is not helped by an earlier run

def open_and_paint():
    t0 = time.perf_counter()
    source = RasterTileSource({path!r}, runner, overview_cache_dir=cache_dir)
    canvas.set_raster(source)
    while source.overview is None:
        app.processEvents()
        if source.error is not None:
            raise source.error
        time.sleep(0.002)
    item = canvas.raster_item()
    before = item.painted
    canvas.viewport().repaint()
    assert item.painted > before
    return source, t0, time.perf_counter() - t0

source, t0, first_paint = open_and_paint()

def settle(limit=120.0):
    # the visible tiles, read while a progressive overview may still be reading
    t = time.perf_counter()
    app.processEvents()
    time.sleep(0.001)
    app.processEvents()
    while source.is_reading_tiles():
        app.processEvents()
        time.sleep(0.002)
        if time.perf_counter() - t > limit:
            raise SystemExit("tiles did not come")
    canvas.viewport().repaint()
    return time.perf_counter() - t

canvas.zoom_100()
first_tiles = settle()
while source.is_opening():
    app.processEvents()
    time.sleep(0.002)
overview_whole = time.perf_counter() - t0
hbar, vbar = canvas.horizontalScrollBar(), canvas.verticalScrollBar()
hbar.setValue(hbar.minimum()); vbar.setValue(vbar.minimum())
settle()
times, peak_rss = [], rss_mb()
step, direction = 700, 1
for i in range({pans}):
    if (direction > 0 and hbar.value() + step > hbar.maximum()) or \
            (direction < 0 and hbar.value() - step < hbar.minimum()):
        vbar.setValue(vbar.value() + step)
        direction = -direction
    else:
        hbar.setValue(hbar.value() + direction * step)
    times.append(settle())
    peak_rss = max(peak_rss, rss_mb())
times.sort()
tiles_read, cache_peak = source.tiles_read, source.cache.peak_bytes
canvas.set_raster(None)
runner.wait_all(60000)
source, _, reopen_paint = open_and_paint()  # the same file again: the kept overview
reopen_cached = source.overview_from_cache
result = dict(overview_first_paint_s=first_paint, overview_factor=source.overview_factor,
              overview_whole_s=overview_whole, reopen_first_paint_s=reopen_paint,
              reopen_from_cache=reopen_cached,
              file_overviews=list(source.info.overview_factors), first_tiles_s=first_tiles,
              pans=len(times), pan_median_s=times[len(times) // 2], pan_max_s=times[-1],
              tiles_read=tiles_read, cache_peak_mb=cache_peak / 2**20,
              cache_limit_mb=source.cache.max_bytes / 2**20, rss_after_pans_mb=rss_mb(),
              rss_sampled_peak_mb=peak_rss,
              peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
canvas.set_image(None)
runner.wait_all(60000)
print(json.dumps(result))
"""


def with_overviews(path: Path) -> Path:
    """A copy of ``path`` with internal overviews 2..128 (made once)."""
    target = path.with_name(f"{path.stem}_ovr.tif")
    if target.is_file():
        return target
    import shutil
    import time

    import rasterio
    from rasterio.enums import Resampling

    note(f"copying {path.name} and building its overviews ...")
    started = time.perf_counter()
    partial = target.with_suffix(".partial.tif")
    shutil.copyfile(path, partial)
    with rasterio.Env(COMPRESS_OVERVIEW="DEFLATE"), rasterio.open(partial, "r+") as ds:
        ds.build_overviews([2, 4, 8, 16, 32, 64, 128], Resampling.average)
    partial.rename(target)
    note(f"  done in {time.perf_counter() - started:.0f} s")
    return target


def run_child(path: Path, pans: int) -> dict:
    import tempfile

    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    with tempfile.TemporaryDirectory(prefix="rooftop-overviews-") as cache_dir:
        code = CHILD.format(repo=str(REPO), path=str(path), pans=pans, cache_dir=cache_dir)
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=1800
        )
    if out.returncode != 0:
        raise SystemExit(f"child failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return {k: rnd(v) if isinstance(v, float) else v for k, v in result.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--side", type=int, default=30_000)
    parser.add_argument("--pans", type=int, default=40)
    parser.add_argument(
        "--skip-plain",
        action="store_true",
        help="only the file with overviews (the plain one takes 30 s to "
        "show: its overview is a decimated read of every block)",
    )
    args = parser.parse_args()
    from orthophoto import make_geotiff

    plain = make_geotiff(CACHE_DIR / f"ortho_{args.side}.tif", args.side)
    files = {"with_overviews": with_overviews(plain)}
    if not args.skip_plain:
        files["without_overviews"] = plain
    results = {}
    for name, path in files.items():
        note(f"{name}: {path} ...")
        results[name] = run_child(path, args.pans)
        note(f"  {results[name]}")
    emit(
        {
            "benchmark": "orthophoto_gui",
            "side": args.side,
            "machine": machine(),
            "targets": TARGETS,
            "results": results,
            "meets_targets": {
                name: {
                    "shown_within_3_s": r["overview_first_paint_s"]
                    <= TARGETS["overview_first_paint_s"],
                    "under_1_gb": r["peak_rss_mb"] <= TARGETS["peak_rss_mb"],
                }
                for name, r in results.items()
            },
        }
    )


if __name__ == "__main__":
    main()
