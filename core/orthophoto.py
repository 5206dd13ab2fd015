"""Whole-orthophoto prediction in bounded memory: windows in, georeferenced strips out.

:func:`predict_raster` reads a georeferenced raster (:mod:`core.raster`) one row of tiles at a
time, predicts it with the same tiled, blended inference as an image in memory
(:func:`core.tiled_inference.stream_probabilities`, so the probabilities are bit for bit the
in-memory ones), applies the threshold and dilation strip by strip (keeping the few rows of halo
the dilation needs from the neighbouring strips), and writes each finished block of rows to
``OUT/NAME.tif`` on exactly the input's grid (CRS, transform, size), tiled, DEFLATE-compressed,
with overviews, optionally a Cloud-Optimised GeoTIFF, plus ``NAME_probability.tif`` on request.
Memory depends on the tile size and the raster's width, never on its height.

No pixel outside the valid data (nodata, an internal mask or alpha of 0, outside the raster) is
ever called roof: its probability counts as 0 before dilation and it is written as no data.

A composite (``NAME_composite.png``: input | prediction, as for images) is drawn from a decimated
read of at most :data:`COMPOSITE_MAX_SIDE` pixels a side, since a full-resolution picture of a
town would not fit in memory.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core.checkpoint import LoadedModel
from core.device import resolve_precision
from core.errors import ConfigError, ImageReadError
from core.ground_resolution import model_resolution, prediction_scale, resolution_of_grid
from core.input_stretch import model_stretch, raster_stretch_table, stretched_reader
from core.postprocess import check_kernel, check_threshold, to_mask
from core.progress import Progress, ProgressCallback, StopCheck, report
from core.raster import BLOCK_SIZE, RASTER_SUFFIXES, RasterSource
from core.raster_writer import RasterWriter
from core.tiled_inference import TileEngine, stream_probabilities

#: Longest side of the decimated composite of an orthophoto.
COMPOSITE_MAX_SIDE = 4096
#: ``(row_off, probabilities (rows, width) float32, valid (rows, width) bool)``
Strip = tuple[int, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class PredictedRaster:
    source: Path
    mask_path: Path
    probability_path: Path | None
    composite_path: Path | None
    roof_fraction: float  # of the valid pixels
    georeferenced: bool
    width: int
    height: int


class _ValidRows:
    """The valid masks of the rows the tile reader has read, kept until their strip is done
    (the reader runs in a background thread)."""

    def __init__(self, source: RasterSource) -> None:
        self.source = source
        self._rows: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()

    def read_rows(self, y0: int, y1: int) -> np.ndarray:
        rgb, valid = self.source.read_window(y0, 0, y1 - y0, self.source.width)
        with self._lock:
            for offset in range(y1 - y0):
                self._rows.setdefault(y0 + offset, valid[offset])
        return rgb

    def take(self, y0: int, y1: int) -> np.ndarray:
        with self._lock:
            return np.stack([self._rows.pop(row) for row in range(y0, y1)])


class _StripMasks:
    """Threshold and dilation over probability strips that arrive top to bottom: a row's mask is
    final once the rows its dilation window reaches have arrived (``to_mask`` on a whole image
    gives the same pixels: the window is the same, and only the image's own top and bottom are
    padded)."""

    def __init__(self, height: int, threshold: float, dilation: int) -> None:
        self.height, self.threshold, self.dilation = height, threshold, dilation
        self.up, self.down = dilation // 2, max(dilation - 1, 0) // 2
        self._prob: np.ndarray | None = None  # rows _start .. _start + len
        self._start = 0
        self._next = 0  # first row whose mask is not out yet

    def add(self, row_off: int, prob: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        """Take the probability rows ``row_off ..``; yield ``(row_off, mask rows)`` now final."""
        if self._prob is None:
            self._prob, self._start = prob, row_off
        else:
            if row_off != self._start + len(self._prob):
                raise ValueError("probability strips must arrive in order, without gaps")
            self._prob = np.concatenate([self._prob, prob])
        end = self._start + len(self._prob)
        limit = self.height if end >= self.height else end - self.down
        if limit <= self._next:
            return
        lo = max(0, self._next - self.up)
        part = self._prob[lo - self._start :]
        mask = to_mask(part, self.threshold, self.dilation)[self._next - lo : limit - lo]
        yield self._next, mask
        self._next = limit
        keep_from = max(0, limit - self.up)
        self._prob = self._prob[keep_from - self._start :]
        self._start = keep_from


class _BlockBuffer:
    """Collects rows and writes them in whole blocks of :data:`BLOCK_SIZE` rows (a partly
    written compressed block would be written again)."""

    def __init__(self, writer: RasterWriter, height: int) -> None:
        self.writer, self.height = writer, height
        self._parts: list[tuple[np.ndarray, np.ndarray]] = []
        self._start = 0
        self._rows = 0

    def add(self, row_off: int, array: np.ndarray, valid: np.ndarray) -> None:
        if row_off != self._start + self._rows:
            raise ValueError("rows must be added in order, without gaps")
        self._parts.append((array, valid))
        self._rows += len(array)
        if self._rows >= BLOCK_SIZE or self._start + self._rows >= self.height:
            self.flush()

    def flush(self) -> None:
        if not self._parts:
            return
        data = np.concatenate([a for a, _v in self._parts])
        valid = np.concatenate([v for _a, v in self._parts])
        whole = (
            len(data)
            if self._start + len(data) >= self.height
            else len(data) // BLOCK_SIZE * BLOCK_SIZE
        )
        self.writer.write_rows(self._start, data[:whole], valid[:whole])
        self._parts = [(data[whole:], valid[whole:])] if whole < len(data) else []
        self._start += whole
        self._rows = len(data) - whole


def output_paths(out_dir: Path, source: Path) -> tuple[Path, Path, Path]:
    """``OUT/NAME.tif``, ``OUT/NAME_probability.tif`` and ``OUT/NAME_composite.png``."""
    stem = source.stem
    return (
        out_dir / f"{stem}.tif",
        out_dir / f"{stem}_probability.tif",
        out_dir / f"{stem}_composite.png",
    )


def predict_raster(
    loaded: LoadedModel,
    source_path: str | Path,
    out_dir: str | Path,
    *,
    threshold: float | None = None,
    dilation: int = 0,
    tile: int = 512,
    overlap: int = 64,
    device: torch.device | str = "cpu",
    precision: str = "auto",
    tta: bool = False,
    bands: Sequence[int] | None = None,
    probabilities: bool = False,
    cog: bool = False,
    composite_output: bool = False,
    on_progress: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
    on_mask_rows=None,
    engine: TileEngine | None = None,
    probability_strips: Iterable[Strip] | None = None,
    ground_resolution: float | None = None,
) -> PredictedRaster:
    """Predict the raster at ``source_path`` and write its georeferenced mask (see the module
    docstring). ``on_mask_rows(row_off, mask_rows, prob_rows, valid_rows)``, when given, sees
    each finished strip (building polygons are made from them). Reports
    ``Progress(done_pixels, total_pixels, item=name, unit="pixels")``; raises
    ``core.progress.Stopped`` when ``should_stop()`` says so, leaving nothing at the targets.

    ``probability_strips``: the raster's probabilities already predicted (``(row_off, prob,
    valid)`` top to bottom, as :func:`probability_rows` yields them, e.g. by several processes,
    :mod:`core.distributed_predict`): written as if predicted here.

    ``ground_resolution`` (cm per pixel): the raster's when its georeferencing gives none (no
    CRS); a model that records its own sees the raster resampled to it."""
    from core.device import resolve_device

    source_path, out_dir = Path(source_path), Path(out_dir)
    threshold = check_threshold(loaded.threshold if threshold is None else threshold)
    dilation = check_kernel(dilation)
    torch_device = resolve_device(device) if not isinstance(device, torch.device) else device
    model = loaded.model.to(torch_device).eval()
    amp_dtype = resolve_precision(precision, torch_device, model)
    from core.io import ensure_folder

    ensure_folder(out_dir)
    mask_path, prob_path, composite_path = output_paths(out_dir, source_path)
    with RasterSource(source_path, bands) as source:
        height, width = source.height, source.width
        _rgb, overview_valid, _factor = source.read_overview(1024)
        if not overview_valid.any():
            raise ImageReadError(
                "has no valid pixels: every pixel is no data (or masked out)", source_path
            )
        masks = _StripMasks(height, threshold, dilation)
        pending_prob: dict[int, np.ndarray] = {}
        roof = valid_count = 0
        with RasterWriter(mask_path, source, kind="mask", cog=cog) as mask_writer:
            prob_writer = (
                RasterWriter(prob_path, source, kind="probability", cog=cog)
                if probabilities
                else None
            )
            try:
                mask_out = _BlockBuffer(mask_writer, height)
                prob_out = _BlockBuffer(prob_writer, height) if prob_writer else None
                strips = probability_strips
                if strips is None:
                    strips = _probability_strips(
                        model,
                        source,
                        torch_device,
                        amp_dtype,
                        tile=tile,
                        overlap=overlap,
                        tta=tta,
                        should_stop=should_stop,
                        engine=engine,
                        ground_resolution=ground_resolution,
                    )
                for row_off, prob, valid in strips:
                    pending_prob[row_off] = (prob, valid)
                    for out_off, mask in masks.add(row_off, prob):
                        mask_valid, mask_prob = _rows_of(pending_prob, out_off, len(mask))
                        mask &= mask_valid
                        roof += int(mask.sum())
                        valid_count += int(mask_valid.sum())
                        mask_out.add(out_off, mask, mask_valid)
                        if prob_out is not None:
                            prob_out.add(out_off, mask_prob, mask_valid)
                        if on_mask_rows is not None:
                            on_mask_rows(out_off, mask, mask_prob, mask_valid)
                        done = (out_off + len(mask)) * width
                        report(
                            on_progress,
                            Progress(done, height * width, source_path.name, unit="pixels"),
                        )
                if prob_writer is not None:
                    prob_writer.close()
            except BaseException:
                if prob_writer is not None:
                    prob_writer.abort()
                raise
        georeferenced = source.is_georeferenced
        written_composite = None
        if composite_output:
            written_composite = _write_composite(source, mask_path, composite_path)
    return PredictedRaster(
        source_path,
        mask_path,
        prob_path if probabilities else None,
        written_composite,
        roof / valid_count if valid_count else 0.0,
        georeferenced,
        width,
        height,
    )


def _probability_strips(
    model,
    source: RasterSource,
    device: torch.device,
    amp_dtype,
    *,
    tile: int,
    overlap: int,
    tta: bool,
    should_stop: StopCheck | None,
    engine: TileEngine | None,
    rows: tuple[int, int] | None = None,
    on_progress: ProgressCallback | None = None,
    ground_resolution: float | None = None,
) -> Iterator[Strip]:
    """``(row_off, prob, valid)`` strips of ``source`` (all rows, or ``rows=(a, b)``), the
    probability 0 where there is no data. A model that records its ground resolution sees the
    raster resampled to it when the raster's own is known (:mod:`core.ground_resolution`)."""
    own = resolution_of_grid(source.crs, source.transform)
    scale = prediction_scale(model_resolution(model), own or ground_resolution, source.path)
    valid_rows = _ValidRows(source)
    table = None  # a model trained with an input stretch: one table for the whole raster
    if model_stretch(model) != "none":
        table = raster_stretch_table(source.path, source.bands, source=source)
    strips = stream_probabilities(
        model,
        stretched_reader(valid_rows.read_rows, table),
        source.height,
        source.width,
        device,
        amp_dtype,
        tile=tile,
        overlap=overlap,
        tta=tta,
        should_stop=should_stop,
        engine=engine,
        rows=rows,
        on_progress=on_progress,
        scale=scale,
    )
    for row_off, prob in strips:
        valid = valid_rows.take(row_off, row_off + len(prob))
        prob[~valid] = 0.0  # no data is never roof, nor dilated into roof
        yield row_off, prob, valid


def probability_rows(
    loaded: LoadedModel,
    source_path: str | Path,
    rows: tuple[int, int],
    *,
    tile: int = 512,
    overlap: int = 64,
    device: torch.device | str = "cpu",
    precision: str = "auto",
    tta: bool = False,
    bands: Sequence[int] | None = None,
    on_progress: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
    engine: TileEngine | None = None,
    ground_resolution: float | None = None,
) -> Iterator[Strip]:
    """The probabilities of rows ``rows=(a, b)`` of the raster at ``source_path``, bit for bit
    those :func:`predict_raster` computes for them: ``(row_off, prob, valid)`` strips, top to
    bottom (one process's share of a raster predicted by several). Reports
    ``Progress(tiles done, tiles, unit="tiles")``."""
    from core.device import resolve_device

    source_path = Path(source_path)
    torch_device = resolve_device(device) if not isinstance(device, torch.device) else device
    model = loaded.model.to(torch_device).eval()
    amp_dtype = resolve_precision(precision, torch_device, model)
    with RasterSource(source_path, bands) as source:
        _rgb, overview_valid, _factor = source.read_overview(1024)
        if not overview_valid.any():
            raise ImageReadError(
                "has no valid pixels: every pixel is no data (or masked out)", source_path
            )
        yield from _probability_strips(
            model,
            source,
            torch_device,
            amp_dtype,
            tile=tile,
            overlap=overlap,
            tta=tta,
            should_stop=should_stop,
            engine=engine,
            rows=rows,
            on_progress=on_progress,
            ground_resolution=ground_resolution,
        )


def _rows_of(
    pending: dict[int, tuple[np.ndarray, np.ndarray]], row_off: int, count: int
) -> tuple[np.ndarray, np.ndarray]:
    """Valid masks and probabilities of rows ``row_off .. row_off + count`` from the strips
    kept in ``pending`` (strips wholly before them are dropped)."""
    valid_parts, prob_parts = [], []
    for start in sorted(pending):
        prob, valid = pending[start]
        end = start + len(prob)
        if end <= row_off:
            del pending[start]
            continue
        lo, hi = max(start, row_off), min(end, row_off + count)
        if lo < hi:
            valid_parts.append(valid[lo - start : hi - start])
            prob_parts.append(prob[lo - start : hi - start])
    valid = np.concatenate(valid_parts)
    prob = np.concatenate(prob_parts)
    if len(valid) != count:
        raise ValueError(f"rows {row_off}..{row_off + count} are not all pending")
    return valid, prob


def _write_composite(source: RasterSource, mask_path: Path, target: Path) -> Path:
    """``input | prediction`` at most COMPOSITE_MAX_SIDE px a side, from decimated reads."""
    from core.export import composite
    from core.io import write_image
    from core.raster import open_raster

    rgb, valid, factor = source.read_overview(COMPOSITE_MAX_SIDE)
    with open_raster(mask_path) as written:
        mask_rgb, _mask_valid, _f = written.read_overview(COMPOSITE_MAX_SIDE)
    if mask_rgb.shape[:2] != rgb.shape[:2]:
        raise ConfigError(
            f"the decimated mask is {mask_rgb.shape[:2]}, the image {rgb.shape[:2]}", mask_path
        )
    return write_image(target, composite(rgb, None, mask_rgb[..., 0] > 0))


def is_raster_input(path: Path) -> bool:
    """Whether ``path`` is read as a raster (GeoTIFF, JPEG 2000, VRT...) by its suffix."""
    return path.suffix.lower() in RASTER_SUFFIXES
