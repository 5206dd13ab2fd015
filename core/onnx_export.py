"""Models QGIS can run: ONNX export with the metadata of the QGIS Deepness plugin.

``export_onnx(model_path, out_path)`` writes an ONNX model that takes a batch of ``tile`` x
``tile`` RGB tiles scaled to [0, 1] (``(N, 3, tile, tile)`` float32, the batch dynamic) and
returns the roof probability (``(N, 1, tile, tile)``, sigmoid applied), with the metadata keys the
Deepness plugin reads (JSON values, see :data:`DEEPNESS_KEYS`): ``model_type`` "Segmentor",
``class_names`` ``{0: "roof"}`` (one sigmoid output), ``resolution`` in cm/px when known (the
plugin resamples the orthophoto to it), ``tile_size`` (and the ``tiles_size`` spelling of its
documentation), ``tiles_overlap`` in percent of the tile, ``seg_thresh`` (the model's own
threshold), ``seg_small_segment`` and ``standardization_mean`` / ``standardization_std`` (0 and
1: Deepness divides by 255 as our training did). Plus ``rooftop_*`` keys for our own tools.

``OnnxEngine`` runs such a file with onnxruntime (with its standardization, as Deepness applies it):
the prediction engine ``--engine onnxruntime``. A model trained with an input stretch
(:mod:`core.input_stretch`) exported with ``stretch_from=ORTHOPHOTO`` carries that raster's
per-band stretch as its standardization, so that Deepness feeds it what it learnt on.

Needs the ``onnx``, ``onnxscript`` (torch's exporter writes through it) and ``onnxruntime``
packages: ``pip install "rooftop-studio[onnx]"``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import CheckpointError, ConfigError

#: The keys every exported model carries (Deepness reads them; the rest are ours).
DEEPNESS_KEYS = (
    "model_type",
    "class_names",
    "tile_size",
    "tiles_size",
    "tiles_overlap",
    "seg_thresh",
    "seg_small_segment",
    "standardization_mean",
    "standardization_std",
)
INPUT_NAME, OUTPUT_NAME = "image", "roof_probability"
#: Said in the model's description (and by ``rooftop export-onnx``) for a model trained with an
#: input stretch: the graph takes the stretched pixels, which Deepness does not make.
STRETCH_NOTE = (
    "; trained on images stretched per band to their 2nd-98th percentiles "
    "(rooftop_input_stretch): give it orthophotos stretched that way, or expect weaker "
    "predictions in QGIS"
)
OPSET = 18


class _quiet_exporter:
    """Silence the exporter's log lines about operators we do not use (torchvision's) and its
    deprecation warnings."""

    def __enter__(self):
        import logging
        import warnings

        self._loggers = [logging.getLogger(n) for n in ("torch.onnx", "onnxscript")]
        self._levels = [lg.level for lg in self._loggers]
        for lg in self._loggers:
            lg.setLevel(logging.ERROR)
        # and the exporter's own deprecation notices, which are not the user's to act on
        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return self

    def __exit__(self, *exc):
        self._warnings.__exit__(*exc)
        for lg, level in zip(self._loggers, self._levels, strict=True):
            lg.setLevel(level)


def _require(package: str):
    import importlib

    try:
        return importlib.import_module(package)
    except ImportError:
        raise ConfigError(
            f'the {package} package is needed for ONNX models: pip install "rooftop-studio[onnx]"'
        ) from None


@dataclass(frozen=True)
class ExportedOnnx:
    path: Path
    metadata: dict[str, Any]
    tile: int


def deepness_metadata(
    threshold: float,
    tile: int,
    overlap: int,
    resolution_cm: float | None,
    arch: str,
    source: str,
    input_stretch: str = "none",
    stretch_ranges: Any = None,
    stretch_source: str | None = None,
) -> dict[str, Any]:
    """The metadata (values before JSON encoding) written into an exported model."""
    meta: dict[str, Any] = {
        "model_type": "Segmentor",
        "class_names": {0: "roof"},
        "tile_size": tile,
        "tiles_size": tile,
        "tiles_overlap": int(round(100 * overlap / tile)),
        "seg_thresh": float(threshold),
        "seg_small_segment": 0,
        "standardization_mean": [0.0, 0.0, 0.0],
        "standardization_std": [1.0, 1.0, 1.0],
        "rooftop_arch": arch,
        "rooftop_source": source,
        "rooftop_overlap_px": overlap,
        "rooftop_input_stretch": input_stretch,
    }
    if stretch_ranges is not None:
        # Deepness feeds (x / 255 - mean) / std; with these that is (x - low) / (high - low),
        # the stretch of training, which the graph clamps to [0, 1] as training's table did
        low, high = np.asarray(stretch_ranges, np.float64).T
        meta["standardization_mean"] = [round(v, 6) for v in (low / 255.0).tolist()]
        meta["standardization_std"] = [round(v, 6) for v in ((high - low) / 255.0).tolist()]
        meta["rooftop_stretch_from"] = stretch_source
    if resolution_cm is not None:
        meta["resolution"] = float(resolution_cm)
    return meta


def export_onnx(
    model_path: str | Path,
    out_path: str | Path,
    *,
    tile: int = 512,
    overlap: int = 64,
    resolution_cm: float | None = None,
    stretch_from: str | Path | None = None,
) -> ExportedOnnx:
    """Write the model of ``model_path`` (a checkpoint) as ONNX to ``out_path`` (atomically).

    ``stretch_from``: for a model trained with an input stretch, the orthophoto (or image) the
    model will be run on in QGIS: its stretch is written as Deepness's per-band standardization,
    so the plugin feeds the model what it learnt on. Without it such a model is exported with a
    warning (:data:`STRETCH_NOTE`).

    ``resolution_cm``: the ground resolution of the training imagery in cm/px (default: the
    checkpoint's ``resolution_cm`` metadata when it has one; else omitted and QGIS uses the
    orthophoto as it is)."""
    import torch

    from core.checkpoint import load_checkpoint
    from core.input_stretch import image_stretch_ranges, model_stretch
    from core.io import write_bytes_atomic
    from core.tiled_inference import check_tiling

    onnx = _require("onnx")
    loaded = load_checkpoint(model_path, device="cpu")
    check_tiling(tile, overlap, getattr(loaded.model, "size_multiple", 1))
    if resolution_cm is None:
        resolution_cm = loaded.metadata.get("resolution_cm")
    if resolution_cm is not None and not resolution_cm > 0:
        raise ConfigError(
            f"--resolution must be a positive number of cm per pixel, got {resolution_cm}"
        )

    class Probabilities(torch.nn.Module):
        def __init__(self, net: torch.nn.Module) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            # [0, 1] as in training (a no-op for x / 255; clips a standardized stretch)
            return torch.sigmoid(self.net(x.clamp(0.0, 1.0)))

    _require("onnxscript")  # torch's exporter (torch.export based) writes through it
    wrapper = Probabilities(loaded.model).eval()
    example = torch.zeros(1, 3, tile, tile)
    batch = torch.export.Dim("batch", min=1, max=4096)
    try:
        with _quiet_exporter():
            program = torch.onnx.export(
                wrapper,
                (example,),
                dynamo=True,
                opset_version=OPSET,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_shapes={"x": {0: batch}},
                verbose=False,
            )
        proto = onnx.load_from_string(program.model_proto.SerializeToString())
    except Exception as exc:  # the exporter's own errors are many and untyped
        raise CheckpointError(
            f"cannot be exported to ONNX ({type(exc).__name__}: {exc})", model_path
        ) from exc
    stretch = model_stretch(loaded.model)
    ranges = None
    if stretch_from is not None:
        if stretch == "none":
            raise ConfigError(
                "--stretch-from is for models trained with an input stretch; this one sees the "
                "pixels as they are"
            )
        ranges = image_stretch_ranges(stretch_from)
    meta = deepness_metadata(
        loaded.threshold,
        tile,
        overlap,
        resolution_cm,
        loaded.arch,
        Path(model_path).name,
        stretch,
        ranges,
        None if stretch_from is None else Path(stretch_from).name,
    )
    del proto.metadata_props[:]
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    proto.doc_string = (
        "Rooftop Studio roof segmentation: input RGB / 255, NCHW; output the "
        "roof probability (sigmoid)"
        + (STRETCH_NOTE if stretch != "none" and ranges is None else "")
    )
    onnx.checker.check_model(proto)
    path = write_bytes_atomic(out_path, proto.SerializeToString())
    return ExportedOnnx(path, meta, tile)


def read_onnx_metadata(path: str | Path) -> dict[str, Any]:
    """The JSON-decoded metadata of an ONNX file (no onnxruntime session needed)."""
    onnx = _require("onnx")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise CheckpointError(f"not a readable ONNX model ({exc})", path) from exc
    return {p.key: json.loads(p.value) for p in proto.metadata_props}


class OnnxEngine:
    """An exported model run by onnxruntime: ``forward(batch uint8 NHWC) -> (N, H, W)``."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        ort = _require("onnxruntime")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise CheckpointError(f"onnxruntime cannot load this model ({exc})", path) from exc
        shape = self.session.get_inputs()[0].shape
        self.tile = int(shape[-1])
        meta = self.session.get_modelmeta().custom_metadata_map
        self.threshold = float(json.loads(meta.get("seg_thresh", "0.5")))
        self.size_multiple = 1
        # Deepness's standardization, as the plugin applies it
        self.mean = np.asarray(
            json.loads(meta.get("standardization_mean", "[0, 0, 0]")), np.float32
        )
        self.std = np.asarray(json.loads(meta.get("standardization_std", "[1, 1, 1]")), np.float32)

    def forward(self, batch: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32) / 255.0
        x = (x - self.mean[None, :, None, None]) / self.std[None, :, None, None]
        return self.session.run(None, {INPUT_NAME: x})[0][:, 0]
