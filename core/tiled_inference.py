"""Tiled inference by rows of tiles: memory bounded by one row of tiles, whatever the image size.

The image is seen through a *row reader* ``read_rows(y0, y1) -> (y1 - y0, W, 3) uint8`` (an array
in memory, or windows of a GeoTIFF read from disk). Tiles lie on one regular grid
(:func:`core.windows.plan_tiles`: ``tile`` px every ``step`` px, the step a multiple of the
model's pooling factor); the image is padded on the bottom and right to the grid's size by
reflection (by edge replication when a side is shorter than its padding), exactly as
``np.pad`` pads the whole image. Each tile's probabilities are blended with per-axis ramp weights
(0 within ``overlap / 4`` of an inner tile edge, rising to 1 at ``3 * overlap / 4``, 1 on the
image's own borders), so there are no seams.

:func:`stream_probabilities` runs the tiles one row of tiles at a time and yields each finished
strip of rows (rows no later tile reaches) as soon as it is done. It keeps one band of
``tile`` rows x the padded width in float32 and the pixels of one tile row, and reads the next
tile row's pixels in a background thread while the network runs (GDAL and numpy release the GIL).
The in-memory path (``core.predict.predict_probabilities``) is this same loop over an array, so
a windowed orthophoto gives bit for bit the same probabilities as the whole image in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

from core.device import autocast
from core.errors import ConfigError
from core.progress import Progress, ProgressCallback, StopCheck, check_stop, report
from core.windows import TilePlan, plan_tiles

#: Most pixels per forward pass on the CPU: CPU convolutions run 1.5-2x faster per pixel while a
#: pass's activations stay in the cache, so one 512 px tile beats four at once
#: (benchmarks/predict_throughput.py).
CPU_BATCH_PIXELS = 512 * 512

RowReader = Callable[[int, int], np.ndarray]


class TileEngine(Protocol):
    """Something that turns a ``(N, tile, tile, 3) uint8`` batch into ``(N, tile, tile)``
    probabilities (torch's forward pass is the default; onnxruntime is another)."""

    def forward(self, batch: np.ndarray) -> np.ndarray: ...


def check_tiling(tile: int, overlap: int, multiple: int) -> None:
    """ConfigError unless ``tile`` and ``overlap`` suit a model whose sides must be multiples of
    ``multiple``."""
    if tile < 32 or tile % multiple:
        raise ConfigError(
            f"--tile must be at least 32 and a multiple of {multiple} for this model, got {tile}"
        )
    if overlap < 0 or overlap > tile // 2 or overlap % 2:
        raise ConfigError(
            f"--overlap must be even, from 0 to half the tile ({tile // 2}), got {overlap}"
        )


def tile_step(tile: int, overlap: int, multiple: int) -> int:
    """The grid step: ``tile - overlap`` rounded down to the model's multiple."""
    step = tile - overlap
    return step - step % multiple


def ramp(length: int, overlap: int, first: bool, last: bool) -> np.ndarray:
    """1-D blending weight of a tile (see the module docstring)."""
    weight = np.ones(length, np.float32)
    if overlap <= 0:
        return weight
    lo, hi = overlap / 4.0, 3.0 * overlap / 4.0
    d = np.arange(length, dtype=np.float32)
    rising = np.clip((d - lo + 0.5) / (hi - lo), 0.0, 1.0)
    if not first:
        weight = np.minimum(weight, rising)
    if not last:
        weight = np.minimum(weight, rising[::-1])
    return weight


def pad_mode(height: int, width: int, padded_height: int, padded_width: int) -> str:
    """``np.pad``'s mode for padding an image to the grid: reflect, or edge when a padding is not
    shorter than its side (reflection would run out of pixels)."""
    return "reflect" if padded_height - height < height and padded_width - width < width else "edge"


def pad_image(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``image`` padded on the bottom/right to ``height`` x ``width`` (:func:`pad_mode`)."""
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image
    mode = pad_mode(h, w, height, width)
    return np.pad(image, ((0, height - h), (0, width - w), (0, 0)), mode=mode)


def padded_index(length: int, padded: int, mode: str) -> np.ndarray:
    """For each position ``0 .. padded - 1`` of a padded axis, the source position it copies."""
    return np.pad(np.arange(length), (0, padded - length), mode=mode)


def forward(
    model: torch.nn.Module,
    batch: np.ndarray,
    device: torch.device,
    tta: bool,
    amp_dtype: torch.dtype | None,
) -> np.ndarray:
    """Probabilities ``(N, H, W)`` for a uint8 batch ``(N, H, W, 3)``; optional flip TTA."""
    x = torch.from_numpy(np.require(batch, requirements=["C", "W"])).to(device)
    x = x.permute(0, 3, 1, 2).float().div_(255.0).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), autocast(device, amp_dtype):
        prob = torch.sigmoid(model(x).float())
        if tta:
            prob = prob + torch.sigmoid(model(x.flip(-1)).float()).flip(-1)
            prob = prob + torch.sigmoid(model(x.flip(-2)).float()).flip(-2)
            prob = prob / 3.0
    return prob[:, 0].float().cpu().numpy()


def input_grid(tile: int, overlap: int, scale: float) -> tuple[int, int]:
    """The tile and overlap on an image that the model sees enlarged by ``scale``
    (:mod:`core.ground_resolution`): ``tile / scale`` px, each resampled to ``tile``."""
    tile_in = max(8, round(tile / scale))
    overlap_in = min(tile_in // 2, 2 * round(overlap / scale / 2))
    return tile_in, overlap_in


def resampled(run: Callable[[np.ndarray], np.ndarray], size: int) -> Callable:
    """``run`` for tiles of any size: each ``(N, h, w, 3) uint8`` batch is resized to ``size`` x
    ``size`` (bilinear, antialiased when shrinking), run, and its probabilities resized back to
    ``h`` x ``w``."""

    def run_resampled(batch: np.ndarray) -> np.ndarray:
        h, w = batch.shape[1:3]
        x = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2).float()
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=size < max(h, w))
        pixels = x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
        prob = torch.from_numpy(np.ascontiguousarray(run(pixels.numpy())))[:, None]
        back = F.interpolate(prob, size=(h, w), mode="bilinear", antialias=size > min(h, w))
        return back[:, 0].numpy()

    return run_resampled


def cpu_batch_size(batch_size: int, tile: int, device: torch.device) -> int:
    """Tiles per forward pass: at most :data:`CPU_BATCH_PIXELS` a pass on the CPU."""
    if device.type == "cpu":
        return max(1, min(batch_size, CPU_BATCH_PIXELS // (tile * tile)))
    return batch_size


class _TileRowSource:
    """The padded pixels of each tile row, read through ``read_rows`` (source rows only)."""

    def __init__(self, read_rows: RowReader, plan: TilePlan) -> None:
        self.read_rows, self.plan = read_rows, plan
        mode = pad_mode(plan.height, plan.width, plan.padded_height, plan.padded_width)
        self.rows = padded_index(plan.height, plan.padded_height, mode)
        self.cols = padded_index(plan.width, plan.padded_width, mode)
        self.mode = mode

    def pixels(self, y: int) -> np.ndarray:
        """Padded rows ``y .. y + tile`` at the padded width, ``(tile, padded_width, 3)``."""
        wanted = self.rows[y : y + self.plan.tile]
        lo, hi = int(wanted.min()), int(wanted.max()) + 1
        band = self.read_rows(lo, hi)
        expected = (hi - lo, self.plan.width)
        if band.shape[:2] != expected or band.ndim != 3 or band.shape[2] != 3:
            raise ValueError(
                f"row reader returned {band.shape} for rows {lo}..{hi}, expected {expected + (3,)}"
            )
        band = band[wanted - lo]
        if self.plan.padded_width != self.plan.width:
            band = np.pad(
                band,
                ((0, 0), (0, self.plan.padded_width - self.plan.width), (0, 0)),
                mode=self.mode,
            )
        return band


def stream_probabilities(
    model: torch.nn.Module,
    read_rows: RowReader,
    height: int,
    width: int,
    device: torch.device,
    amp_dtype: torch.dtype | None,
    tile: int = 512,
    overlap: int = 64,
    batch_size: int = 4,
    tta: bool = False,
    should_stop: StopCheck | None = None,
    on_progress: ProgressCallback | None = None,
    prefetch: bool = True,
    engine: TileEngine | None = None,
    rows: tuple[int, int] | None = None,
    scale: float = 1.0,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(row_offset, probabilities)`` strips, top to bottom, that together cover the
    ``height`` x ``width`` image exactly once; each strip is ``(rows, width) float32``.

    ``rows=(a, b)``: only image rows ``a .. b``, from only the rows of tiles that reach them (on
    the whole image's grid, added in the same order), so they are bit for bit the whole run's
    rows (:func:`strip_rows` shares an image out between processes this way).

    ``read_rows(y0, y1)`` returns source rows ``y0 .. y1`` as ``(y1 - y0, width, 3) uint8``.
    ``engine`` (e.g. ``core.onnx_export.OnnxEngine``) runs the tiles instead of ``model``'s torch
    forward pass; it takes ``tile`` x ``tile`` batches only (images are padded to whole tiles).
    Reports ``Progress(done, total, unit="tiles")``; raises ``core.progress.Stopped`` when
    ``should_stop()`` says so (before each batch of tiles; an image of one tile is one pass, which
    the caller decides to start).

    ``scale`` != 1: the model sees the image enlarged (> 1) or shrunk by ``scale``, to its own
    ground resolution (:mod:`core.ground_resolution`): the grid is laid on the image in tiles of
    :func:`input_grid`, each resampled to ``tile`` px and its probabilities back (:func:`resampled`),
    so the probabilities are on the image's grid.
    """
    multiple = getattr(model, "size_multiple", 1)
    check_tiling(tile, overlap, multiple)
    batch_size = cpu_batch_size(batch_size, tile, device)

    def run(batch: np.ndarray) -> np.ndarray:
        if engine is not None:
            return engine.forward(batch)
        return forward(model, batch, device, tta, amp_dtype)

    if scale != 1.0:
        run = resampled(run, tile)
        (tile, overlap), multiple = input_grid(tile, overlap, scale), 1
    first, end = (0, height) if rows is None else (max(0, rows[0]), min(height, rows[1]))
    if end <= first:
        return
    if height <= tile and width <= tile and (engine is not None or scale != 1.0):
        image = pad_image(read_rows(0, height), tile, tile)
        yield first, run(image[None])[0, first:end, :width]
        report(on_progress, Progress(1, 1, unit="tiles"))
        return
    if height <= tile and width <= tile:  # one pass, padded to the model's multiple
        ph, pw = -(-height // multiple) * multiple, -(-width // multiple) * multiple
        image = pad_image(read_rows(0, height), ph, pw)
        prob = forward(model, image[None], device, tta, amp_dtype)[0, first:end, :width]
        report(on_progress, Progress(1, 1, unit="tiles"))
        yield first, prob
        return
    plan = plan_tiles(height, width, tile, tile_step(tile, overlap, multiple))
    ys, xs = plan.ys, plan.xs
    # The rows of tiles to run: all of them, or those reaching rows first .. end.
    run_ys = ys if rows is None else [y for y in ys if y < end and y + tile > first]
    wy = {y: ramp(tile, overlap, y == ys[0], y == ys[-1]) for y in ys}
    wx = {x: ramp(tile, overlap, x == xs[0], x == xs[-1]) for x in xs}
    # Each weight is an outer product wy x wx, so the summed weight is the outer product of the
    # per-axis sums: two vectors instead of a second full-size array.
    sum_y = np.zeros(plan.padded_height, np.float32)
    sum_x = np.zeros(plan.padded_width, np.float32)
    for y in ys:
        sum_y[y : y + tile] += wy[y]
    for x in xs:
        sum_x[x : x + tile] += wx[x]
    inv_y = np.divide(1.0, sum_y, out=np.zeros_like(sum_y), where=sum_y > 0)
    inv_x = np.divide(1.0, sum_x, out=np.zeros_like(sum_x), where=sum_x > 0)[None, :width]
    source = _TileRowSource(read_rows, plan)
    band = np.zeros((tile, plan.padded_width), np.float32)  # accumulates rows band_y ..
    band_y = run_ys[0]
    total, done = len(run_ys) * len(xs), 0
    pool = ThreadPoolExecutor(1, thread_name_prefix="rooftop-reader") if prefetch else None
    try:
        upcoming = pool.submit(source.pixels, run_ys[0]) if pool else None
        for index, y in enumerate(run_ys):
            pixels = upcoming.result() if upcoming is not None else source.pixels(y)
            upcoming = None
            if pool is not None and index + 1 < len(run_ys):
                upcoming = pool.submit(source.pixels, run_ys[index + 1])
            if y > band_y:  # rows band_y .. y are final: no later tile reaches them
                yield from _finished(band, band_y, y, height, inv_y, inv_x, first, end)
                shift = y - band_y
                band[: tile - shift] = band[shift:]
                band[tile - shift :] = 0.0
                band_y = y
            for start in range(0, len(xs), batch_size):
                check_stop(should_stop, "prediction")
                chunk = xs[start : start + batch_size]
                batch = np.stack([pixels[:, x : x + tile] for x in chunk])
                probs = run(batch)
                for x, prob in zip(chunk, probs, strict=True):
                    prob *= wy[y][:, None]
                    prob *= wx[x][None, :]
                    band[:, x : x + tile] += prob
                done += len(chunk)
                report(on_progress, Progress(done, total, unit="tiles"))
        yield from _finished(band, band_y, band_y + tile, height, inv_y, inv_x, first, end)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def _finished(
    band: np.ndarray,
    band_y: int,
    end: int,
    height: int,
    inv_y: np.ndarray,
    inv_x: np.ndarray,
    first: int = 0,
    last: int | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """The normalised image rows ``band_y .. min(end, height)`` of ``band`` (none past the
    image's last row), only those within ``first .. last``."""
    end = min(end, height, height if last is None else last)
    start = max(band_y, first)
    if end <= start:
        return
    out = band[start - band_y : end - band_y, : inv_x.shape[1]].copy()
    out *= inv_y[start:end, None]
    out *= inv_x
    yield start, out


def strip_rows(
    height: int, width: int, tile: int, overlap: int, multiple: int, parts: int
) -> list[tuple[int, int]]:
    """``parts`` row ranges ``(a, b)`` that cover the image top to bottom, each starting at a row
    of tiles of the grid and holding about as many rows of tiles (empty ranges ``(H, H)`` when
    there are fewer rows of tiles than parts). A range's rows, by :func:`stream_probabilities`
    with ``rows=``, need its rows of tiles and the one before (the overlap)."""
    if height <= tile and width <= tile:
        return [(0, height)] + [(height, height)] * (parts - 1)
    ys = plan_tiles(height, width, tile, tile_step(tile, overlap, multiple)).ys
    starts = [0] + [min(height, ys[r * len(ys) // parts]) for r in range(1, parts)]
    return [(a, b) for a, b in zip(starts, starts[1:] + [height], strict=True)]


def array_reader(image: np.ndarray) -> RowReader:
    """A row reader over an image in memory."""
    return lambda y0, y1: image[y0:y1]
