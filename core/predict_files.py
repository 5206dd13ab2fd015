"""Predicting files: image files and georeferenced orthophotos to mask, probability, composite and
building files in an output folder (``rooftop predict``).

* An image (PNG, JPEG, a TIFF without georeference) is read whole and predicted in memory
  (:func:`core.predict.predict_probabilities`); its mask is ``OUT/NAME.png`` (0/255).
* A georeferenced raster (a GeoTIFF, COG, JPEG 2000 or VRT with a CRS or a geotransform) is
  predicted window by window in bounded memory (:func:`core.orthophoto.predict_raster`): its mask
  is ``OUT/NAME.tif`` on exactly the input's grid; ``probabilities`` adds
  ``NAME_probability.tif`` and ``cog`` makes both Cloud-Optimised GeoTIFFs. A raster with a
  geotransform but no CRS works on its grid, with a warning.
* ``polygons`` (:class:`PolygonOutput`) adds ``NAME.gpkg`` (or ``NAME.geojson``): one polygon per
  building with its area (:mod:`core.vector`), made strip by strip for an orthophoto, so a
  building cut by a strip edge is one polygon and memory stays bounded.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from core.checkpoint import LoadedModel, load_checkpoint
from core.device import resolve_device, resolve_precision
from core.errors import ConfigError, ImageReadError
from core.export import composite, composite_path, mask_path
from core.ground_resolution import check_resolution
from core.image_collection import collect_inputs, find_label_for
from core.io import (
    ensure_folder,
    read_image,
    read_mask,
    write_image,
    write_mask,
)
from core.orthophoto import RASTER_SUFFIXES, output_paths, predict_raster
from core.postprocess import check_kernel, check_threshold, to_mask
from core.predict import image_resolution, predict_probabilities
from core.progress import Progress, ProgressCallback, StopCheck, check_stop, report
from core.tiled_inference import check_tiling

#: Default outline simplification of ``--polygons`` (metres, or pixels without a CRS).
DEFAULT_SIMPLIFY = 0.5
POLYGON_FORMATS = {"gpkg": ".gpkg", "geojson": ".geojson"}


@dataclass(frozen=True)
class PolygonOutput:
    """How building polygons are written (see :func:`core.vector.vectorize`)."""

    format: str = "gpkg"
    min_area: float = 0.0
    simplify: float = DEFAULT_SIMPLIFY
    regularize: bool = False
    gsd: float | None = None

    def path(self, out_dir: Path, name: str) -> Path:
        if self.format not in POLYGON_FORMATS:
            raise ConfigError(
                f"unknown polygon format {self.format!r}: use " + " or ".join(POLYGON_FORMATS)
            )
        return out_dir / f"{Path(name).stem}{POLYGON_FORMATS[self.format]}"


@dataclass(frozen=True)
class PredictedFile:
    source: Path
    mask_path: Path
    composite_path: Path | None
    roof_fraction: float
    probability_path: Path | None = None
    polygons_path: Path | None = None
    buildings: int | None = None
    #: total roof area of the buildings, in ``area_unit`` (m² or px²)
    roof_area: float | None = None
    area_unit: str | None = None
    georeferenced: bool = False
    warnings: list[str] = field(default_factory=list)


def raster_grid(path: Path) -> tuple[bool, bool]:
    """``(read as an orthophoto, has a CRS)`` for an input file: a raster suffix and a CRS or a
    geotransform (a plain TIFF image without either is an image)."""
    if path.suffix.lower() not in RASTER_SUFFIXES:
        return False, False
    from core.raster import open_raster

    with open_raster(path) as source:
        georeferenced = source.crs is not None or not source.transform.is_identity
        return georeferenced, source.crs is not None


def predict_files(
    model: str | Path | LoadedModel,
    inputs: Iterable[str | Path],
    out_dir: str | Path,
    threshold: float | None = None,
    dilation: int = 0,
    tile: int = 512,
    overlap: int = 64,
    composite_output: bool = False,
    device: str = "auto",
    tta: bool = False,
    on_progress: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
    precision: str = "auto",
    *,
    probabilities: bool = False,
    cog: bool = False,
    bands: Sequence[int] | None = None,
    polygons: PolygonOutput | None = None,
    engine: str = "torch",
    gsd: float | None = None,
    adapt: bool = False,
) -> list[PredictedFile]:
    """Predict every input and write its outputs into ``out_dir`` (see the module docstring).

    ``on_progress`` receives ``Progress(done, total, item=<the input's path>, unit="files")``
    after each file, and for an orthophoto ``Progress(pixels done, pixels, item, "pixels")``
    while it is predicted; ``should_stop`` is polled before each file and between batches of
    tiles (Stopped, "prediction stopped"). An unreadable input is an error (nothing after it is
    written; an orthophoto's outputs are whole or absent).

    ``engine``: ``torch``, or ``onnxruntime`` (the model exported to ONNX with ``tile`` x
    ``tile`` inputs into a temporary file, then run by onnxruntime in float32; ``tta`` and
    ``precision`` are torch's only).

    ``gsd``: the ground sample distance (m per pixel) of inputs whose georeferencing gives none
    (a PNG, a raster without a CRS): a model that records its ground resolution sees every
    input resampled to it (:mod:`core.ground_resolution`); the outputs stay on the input's grid.

    ``adapt``: the model's batch-norm statistics are first re-estimated on a sample of all the
    inputs together (:mod:`core.imagery_adaptation`; the torch engine only).

    Under ``torchrun`` the processes share the work (:mod:`core.distributed_predict`: images
    dealt out, each orthophoto split into row strips merged by rank 0); the outputs are a single
    process's. Rank 0 returns every input's result, the other ranks those they wrote."""
    from core.training import distributed

    def run(on_device) -> list[PredictedFile]:
        return _predict_files(
            model,
            inputs,
            out_dir,
            threshold,
            dilation,
            tile,
            overlap,
            composite_output,
            on_device,
            tta,
            on_progress,
            should_stop,
            precision,
            probabilities=probabilities,
            cog=cog,
            bands=bands,
            polygons=polygons,
            engine=engine,
            gsd=gsd,
            adapt=adapt,
        )

    if distributed.launch_env() is None:
        return run(device)
    with distributed.session(resolve_device(device), backend="gloo") as torch_device:
        return run(torch_device)


def _predict_files(
    model,
    inputs,
    out_dir,
    threshold,
    dilation,
    tile,
    overlap,
    composite_output,
    device,
    tta,
    on_progress,
    should_stop,
    precision,
    *,
    probabilities,
    cog,
    bands,
    polygons,
    engine,
    gsd,
    adapt=False,
) -> list[PredictedFile]:
    dilation = check_kernel(dilation)
    given = None if gsd is None else check_resolution(gsd, "--gsd") * 100.0
    files = collect_inputs(inputs)
    torch_device = resolve_device(device)
    loaded = (
        model if isinstance(model, LoadedModel) else load_checkpoint(model, device=torch_device)
    )
    loaded.model.to(torch_device)
    threshold = check_threshold(loaded.threshold if threshold is None else threshold)
    resolve_precision(precision, torch_device)  # a bad choice fails before any output is written
    check_tiling(tile, overlap, getattr(loaded.model, "size_multiple", 1))
    if polygons is not None:
        polygons.path(Path(out_dir), "x")  # a bad format fails before any output is written
    if adapt and engine != "torch":
        raise ConfigError("--adapt runs with the torch engine only")
    tile_engine = _tile_engine(engine, model, loaded, tile, overlap, tta)
    out_dir = Path(out_dir)
    created = not out_dir.exists()  # removed again if it stays empty (a bad input)
    plans = []
    targets: dict[Path, Path] = {}
    sources = {f.resolve() for f in files}
    for source in files:
        is_ortho, has_crs = raster_grid(source)
        target = output_paths(out_dir, source)[0] if is_ortho else mask_path(out_dir, source.name)
        if target in targets:
            raise ConfigError(
                f"two inputs would both be written to {target}: {targets[target]} "
                f"and {source}; predict them into separate folders"
            )
        if target.resolve() in sources:
            raise ConfigError(
                f"the output {target} would overwrite an input image; choose another --out"
            )
        if polygons is not None and polygons.format == "geojson" and not has_crs:
            raise ConfigError(
                "GeoJSON polygons need a georeferenced image (RFC 7946 is longitude/"
                "latitude); use --polygons gpkg for pixel coordinates",
                source,
            )
        targets[target] = source
        plans.append((source, target, is_ortho, has_crs))
    if adapt:
        loaded = _adapted(loaded, plans, bands, given, tile, overlap, torch_device, precision)
    options = dict(
        threshold=threshold,
        dilation=dilation,
        tile=tile,
        overlap=overlap,
        device=torch_device,
        tta=tta,
        precision=precision,
        composite_output=composite_output,
        probabilities=probabilities,
        cog=cog,
        bands=bands,
        polygons=polygons,
        on_progress=on_progress,
        should_stop=should_stop,
        engine=tile_engine,
        ground_resolution=given,
    )
    from core.training import distributed

    ensure_folder(out_dir)
    try:
        if distributed.is_active():
            from core.distributed_predict import predict_shared

            return predict_shared(loaded, plans, out_dir, options, on_progress, should_stop)
        results = []
        for index, (source, target, is_ortho, has_crs) in enumerate(plans):
            check_stop(should_stop, "prediction")
            run = _predict_raster_file if is_ortho else _predict_image_file
            results.append(run(loaded, source, out_dir, target, has_crs=has_crs, **options))
            report(on_progress, Progress(index + 1, len(plans), str(source), unit="files"))
        return results
    except BaseException:
        if created:
            _remove_if_empty(out_dir)
        raise


def _adapted(loaded, plans, bands, given, tile, overlap, device, precision) -> LoadedModel:
    """``loaded`` with its model adapted to a sample of every input (see predict_files)."""
    from dataclasses import replace

    from core.imagery_adaptation import SAMPLE_PIXELS, adapted_model, image_samples, raster_samples

    model = loaded.model
    share = SAMPLE_PIXELS // len(plans)  # each input's share when there are orthophotos
    images = [source for source, _, is_ortho, _ in plans if not is_ortho]
    rasters = [source for source, _, is_ortho, _ in plans if is_ortho]
    samples = image_samples(images, model, given, SAMPLE_PIXELS - share * len(rasters))
    for source in rasters:
        samples += raster_samples(source, model, bands, given, tile, share)
    adapted = adapted_model(
        model, samples, device=device, tile=tile, overlap=overlap, precision=precision
    )
    return replace(loaded, model=adapted)


def _remove_if_empty(folder: Path) -> None:
    """Remove ``folder`` if nothing is in it (a folder this run made, left empty by a failure)."""
    try:
        folder.rmdir()  # fails on a folder that is not empty: what was written stays
    except OSError:
        pass


ENGINES = ("torch", "onnxruntime")


def _tile_engine(engine: str, model, loaded: LoadedModel, tile: int, overlap: int, tta: bool):
    """None for torch, else an onnxruntime engine of the model (exported to a temporary file)."""
    if engine not in ENGINES:
        raise ConfigError(f"unknown engine {engine!r}: use " + " or ".join(ENGINES))
    if engine == "torch":
        return None
    if tta:
        raise ConfigError("--tta runs with the torch engine only")
    import tempfile

    from core.onnx_export import OnnxEngine, export_onnx

    if isinstance(model, LoadedModel):
        if loaded.path is None:
            raise ConfigError("the onnxruntime engine needs a model file")
        model = loaded.path
    with tempfile.TemporaryDirectory(prefix="rooftop-onnx-") as scratch:
        exported = export_onnx(model, Path(scratch) / "model.onnx", tile=tile, overlap=overlap)
        return OnnxEngine(exported.path)  # the session holds the model: the file can go


def _predict_image_file(
    loaded,
    source,
    out_dir,
    target,
    *,
    threshold,
    dilation,
    tile,
    overlap,
    device,
    tta,
    precision,
    composite_output,
    polygons,
    should_stop,
    engine=None,
    ground_resolution=None,
    **_unused,
) -> PredictedFile:
    image = read_image(source)
    prob = predict_probabilities(
        loaded.model,
        image,
        tile=tile,
        overlap=overlap,
        device=device,
        tta=tta,
        should_stop=should_stop,
        precision=precision,
        engine=engine,
        ground_resolution=image_resolution(source, ground_resolution, loaded.model),
    )
    mask = to_mask(prob, threshold, dilation)
    write_mask(target, mask)
    picture_path = None
    if composite_output:
        label_path = find_label_for(source)
        label = read_mask(label_path) if label_path is not None else None
        if label is not None and label.shape != mask.shape:
            raise ImageReadError(
                f"label is {label.shape[1]} x {label.shape[0]} but the image is "
                f"{mask.shape[1]} x {mask.shape[0]}",
                label_path,
            )
        picture_path = composite_path(out_dir, source.name)
        write_image(picture_path, composite(image, label, mask))
    result = PredictedFile(source, target, picture_path, float(mask.mean()))
    if polygons is None:
        return result
    from core.vector import vectorize, write_buildings

    buildings = vectorize(
        mask,
        probability=prob,
        min_area=polygons.min_area,
        simplify=polygons.simplify,
        regularize=polygons.regularize,
        gsd=polygons.gsd,
    )
    path = write_buildings(polygons.path(out_dir, source.name), buildings)
    return _with_buildings(result, path, buildings)


def _with_buildings(result: PredictedFile, path: Path, buildings) -> PredictedFile:
    from dataclasses import replace

    return replace(
        result,
        polygons_path=path,
        buildings=len(buildings),
        roof_area=float(buildings.total_area),
        area_unit=buildings.unit,
    )


def _predict_raster_file(
    loaded,
    source,
    out_dir,
    target,
    *,
    threshold,
    dilation,
    tile,
    overlap,
    device,
    tta,
    precision,
    composite_output,
    probabilities,
    cog,
    bands,
    polygons,
    has_crs,
    on_progress,
    should_stop,
    engine=None,
    probability_strips=None,
    ground_resolution=None,
) -> PredictedFile:
    warnings = (
        []
        if has_crs
        else [
            f"{source}: has a geotransform but no CRS: the outputs are on "
            "its grid without a coordinate system"
        ]
    )
    strips = None
    if polygons is not None:
        from core.raster import open_raster
        from core.vector import StripVectorizer

        with open_raster(source, bands) as grid:
            strips = StripVectorizer(
                grid.width,
                grid.transform,
                grid.crs,
                height=grid.height,
                min_area=polygons.min_area,
                simplify=polygons.simplify,
                regularize=polygons.regularize,
                gsd=polygons.gsd,
            )
            crs = grid.crs
        found: list = []

        def on_rows(row_off, mask_rows, prob_rows, valid_rows):
            found.extend(strips.add_strip(row_off, mask_rows, prob_rows))

    done = predict_raster(
        loaded,
        source,
        out_dir,
        threshold=threshold,
        dilation=dilation,
        tile=tile,
        overlap=overlap,
        device=device,
        precision=precision,
        tta=tta,
        bands=bands,
        probabilities=probabilities,
        cog=cog,
        composite_output=composite_output,
        on_progress=on_progress,
        should_stop=should_stop,
        on_mask_rows=on_rows if strips is not None else None,
        engine=engine,
        probability_strips=probability_strips,
        ground_resolution=ground_resolution,
    )
    result = PredictedFile(
        source,
        done.mask_path,
        done.composite_path,
        done.roof_fraction,
        probability_path=done.probability_path,
        georeferenced=True,
        warnings=warnings,
    )
    if strips is None:
        return result
    from core.vector import BuildingSet, write_buildings

    found.extend(strips.finish())
    buildings = BuildingSet(found, crs, strips.unit)
    path = write_buildings(polygons.path(out_dir, source.name), buildings)
    return _with_buildings(result, path, buildings)
