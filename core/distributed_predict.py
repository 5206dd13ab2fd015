"""Prediction shared between the processes of a ``torchrun`` launch (``rooftop predict``).

:func:`core.predict_files.predict_files` comes here when a process group is active
(:mod:`core.training.distributed`):

* images (read whole) are dealt out: rank ``r`` predicts images ``r, r + N, r + 2N, ...`` and
  writes their outputs itself;
* every orthophoto is split into row strips (:func:`core.tiled_inference.strip_rows`: about as
  many rows of tiles each, on the whole raster's tile grid). Each rank predicts the image rows
  of its strip from the rows of tiles that reach them (its own and the one before, for the
  overlap), so its probabilities are bit for bit those of a single process, and writes them
  raw (float32 probabilities and the valid mask) into two temporary files beside the target;
* then every rank hands its results to the others (one gather), and rank 0 writes each
  orthophoto's outputs from the strips through the same path as a single process
  (:func:`core.orthophoto.predict_raster` with ``probability_strips``): threshold and dilation
  across strip edges, the one georeferenced ``NAME.tif`` (``core.raster_writer.RasterWriter``), the
  probabilities, the composite and the building polygons (one ``StripVectorizer`` over the whole
  raster, so a building across a strip edge is one polygon). The strips are replayed in the
  pieces a single process makes, so every output equals a single process's, file for file.

The temporary strips take 5 bytes a pixel of the raster until rank 0 has merged them; on several
machines ``--out`` must be a folder they all see (a shared file system). Outputs are bit for bit
a single process's when each process runs as many threads (torchrun sets ``OMP_NUM_THREADS=1``):
some CPU convolutions sum in an order that depends on the number of threads.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ConfigError
from core.io import temp_name
from core.orthophoto import Strip, probability_rows
from core.progress import Progress, ProgressCallback, StopCheck, check_stop, report
from core.raster import open_raster
from core.tiled_inference import strip_rows
from core.training import distributed


@dataclass(frozen=True)
class StripFiles:
    """One rank's strip of an orthophoto: rows ``row_off ..`` in the pieces ``lengths`` (as the
    tiled inference made them), raw in ``prob_path`` (float32) and ``valid_path`` (bool)."""

    rank: int
    row_off: int
    width: int
    lengths: tuple[int, ...]
    prob_path: Path | None
    valid_path: Path | None

    @property
    def rows(self) -> int:
        return sum(self.lengths)

    def remove(self) -> None:
        for path in (self.prob_path, self.valid_path):
            if path is not None:
                path.unlink(missing_ok=True)


def predict_shared(
    loaded,
    plans: Sequence[tuple[Path, Path, bool, bool]],
    out_dir: Path,
    options: dict[str, Any],
    on_progress: ProgressCallback | None,
    should_stop: StopCheck | None,
) -> list:
    """Predict ``plans`` (``(source, target, is_orthophoto, has_crs)`` each) with every rank of
    the process group (see the module docstring). Rank 0 returns every input's
    ``PredictedFile``, in order; another rank those of the images it predicted itself."""
    from core.predict_files import _predict_image_file, _predict_raster_file

    world, rank = distributed.world_size(), distributed.rank()
    mine: dict[int, Any] = {}
    strips: dict[int, StripFiles] = {}
    try:
        images = [i for i, plan in enumerate(plans) if not plan[2]]
        for index in distributed.shard(images):
            check_stop(should_stop, "prediction")
            source, target, _ortho, has_crs = plans[index]
            mine[index] = _predict_image_file(
                loaded, source, out_dir, target, has_crs=has_crs, **options
            )
        for index, (source, target, is_ortho, _has_crs) in enumerate(plans):
            if is_ortho:
                check_stop(should_stop, "prediction")
                strips[index] = _predict_strip(
                    loaded, source, target, options, rank, world, on_progress if rank == 0 else None
                )
        everyone = distributed.gather((mine, strips))
    except BaseException:
        for part in strips.values():
            part.remove()
        raise
    if rank != 0:
        return [mine[i] for i in sorted(mine)]
    results: dict[int, Any] = {}
    for found, _strips in everyone:
        results.update(found)
    try:
        for index, (source, target, is_ortho, has_crs) in enumerate(plans):
            if is_ortho:
                parts = [theirs[index] for _found, theirs in everyone]  # top to bottom
                results[index] = _predict_raster_file(
                    loaded,
                    source,
                    out_dir,
                    target,
                    has_crs=has_crs,
                    probability_strips=read_strips(parts),
                    **options,
                )
            report(on_progress, Progress(index + 1, len(plans), str(source), unit="files"))
    finally:
        for _found, theirs in everyone:
            for part in theirs.values():
                part.remove()
    return [results[i] for i in range(len(plans))]


def _predict_strip(
    loaded,
    source: Path,
    target: Path,
    options: dict[str, Any],
    rank: int,
    world: int,
    on_progress: ProgressCallback | None,
) -> StripFiles:
    """This rank's strip of the orthophoto ``source``, written beside ``target``."""
    with open_raster(source, options.get("bands")) as grid:
        height, width = grid.height, grid.width
    multiple = getattr(loaded.model, "size_multiple", 1)
    first, end = strip_rows(height, width, options["tile"], options["overlap"], multiple, world)[
        rank
    ]
    if end <= first:
        return StripFiles(rank, first, width, (), None, None)
    prefix, suffix = temp_name(target)
    paths = []
    for kind in ("prob", "valid"):
        fd, name = tempfile.mkstemp(
            prefix=f"{prefix}{kind}{rank}.", suffix=suffix, dir=target.parent
        )
        os.close(fd)
        paths.append(Path(name))
    lengths: list[int] = []
    try:
        with open(paths[0], "wb") as probs, open(paths[1], "wb") as valids:
            row = first
            for row_off, prob, valid in probability_rows(
                loaded,
                source,
                (first, end),
                tile=options["tile"],
                overlap=options["overlap"],
                device=options["device"],
                precision=options["precision"],
                tta=options["tta"],
                bands=options.get("bands"),
                should_stop=options.get("should_stop"),
                engine=options.get("engine"),
                ground_resolution=options.get("ground_resolution"),
            ):
                if row_off != row or prob.shape != (len(prob), width):
                    raise ValueError(
                        f"strip rows {row_off}.. arrived out of order (expected {row})"
                    )
                probs.write(np.ascontiguousarray(prob, np.float32).tobytes())
                valids.write(np.ascontiguousarray(valid, np.bool_).tobytes())
                lengths.append(len(prob))
                row += len(prob)
                report(
                    on_progress,
                    Progress(
                        (row - first) * width, (end - first) * width, str(source), unit="pixels"
                    ),
                )
        if row != end:
            raise ValueError(f"strip rows {first}..{end} came out as {first}..{row}")
    except BaseException:
        for path in paths:
            path.unlink(missing_ok=True)
        raise
    return StripFiles(rank, first, width, tuple(lengths), paths[0], paths[1])


def read_strips(parts: Sequence[StripFiles]) -> Iterator[Strip]:
    """The ``(row_off, prob, valid)`` pieces of the strips ``parts`` (in rank order, top to
    bottom), as each rank's tiled inference made them."""
    row = 0
    for part in parts:
        if not part.lengths:
            continue
        if part.row_off != row:
            raise ValueError(
                f"the strip of rank {part.rank} starts at row {part.row_off}, expected {row}"
            )
        for path, size in ((part.prob_path, 4), (part.valid_path, 1)):
            if path is None or not path.is_file():
                raise ConfigError(
                    f"the strip of rank {part.rank} is missing: on several machines "
                    "--out must be a folder every machine sees (a shared file "
                    "system)",
                    path,
                )
            if path.stat().st_size != part.rows * part.width * size:
                raise ConfigError(f"the strip of rank {part.rank} is incomplete", path)
        probs = np.memmap(part.prob_path, np.float32, "r", shape=(part.rows, part.width))
        valids = np.memmap(part.valid_path, np.bool_, "r", shape=(part.rows, part.width))
        start = 0
        for length in part.lengths:
            yield (
                part.row_off + start,
                np.array(probs[start : start + length]),
                np.array(valids[start : start + length]),
            )
            start += length
        del probs, valids
        row = part.row_off + part.rows
