"""Model checkpoints: tensors and plain metadata in a safetensors file, never pickled code.

A checkpoint ``MODELS/model_vN.safetensors`` holds the model's weights, optionally the optimizer's
state (for ``rooftop train --resume``), and one JSON document of metadata (architecture and its
parameters, training config, history, dataset path, date, metrics, default threshold).

The original exercise saved whole pickled modules (``torch.save(model)``); unpickling such a file
runs arbitrary code, so :func:`load_checkpoint` refuses it with a message instead of opening it.

:func:`read_metadata` and :func:`list_models` parse the safetensors header themselves and do not
import torch, so the GUI can list models without paying for torch at start-up.
"""

from __future__ import annotations

import json
import os
import re
import struct
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import CheckpointError
from core.io import remove_stale_temp_files, temp_file_target, write_bytes_atomic

if TYPE_CHECKING:  # pragma: no cover
    import torch

FORMAT = "rooftop-checkpoint"
FORMAT_VERSION = 1
SUFFIX = ".safetensors"
_MODEL_NAME = re.compile(r"^model_v(\d+)\.safetensors$")
_MAX_HEADER = 100 * 1024 * 1024
_PICKLE_HINT = (
    "is a pickled PyTorch file (like the original exercise's torch.save(model)); opening it would "
    "run arbitrary code, so Rooftop Studio refuses it. Train a new model with `rooftop train`, or "
    "load it yourself in a trusted environment and re-save its weights as safetensors"
)


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _read_header(path: Path) -> tuple[dict[str, Any], int]:
    """Parse a safetensors header: ``(header_json, data_offset)``. Raises CheckpointError."""
    if not path.exists():
        raise CheckpointError("model file not found", path)
    if path.is_dir():
        raise CheckpointError("is a folder, not a model file", path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(9)
            if len(head) == 0:
                raise CheckpointError("model file is empty (0 bytes)", path)
            # A safetensors file: an 8-byte little-endian header length, then the JSON header.
            # Its first byte is that length's lowest byte, which may well be 0x80 or "P", so the
            # pickle / zip signatures count only when the file is not laid out that way.
            size = struct.unpack("<Q", head[:8])[0] if len(head) >= 8 else 0
            laid_out = 1 < size <= _MAX_HEADER and head[8:9] == b"{"
            if not laid_out and (head[:2] == b"PK" or head[:1] == b"\x80"):
                raise CheckpointError(_PICKLE_HINT, path)
            if len(head) < 8:
                raise CheckpointError("not a Rooftop Studio model (file too short)", path)
            if size <= 1 or size > _MAX_HEADER:
                raise CheckpointError("not a Rooftop Studio model (no safetensors header)", path)
            handle.seek(8)
            raw = handle.read(size)
            file_size = path.stat().st_size
    except OSError as exc:
        raise CheckpointError(f"cannot read model file ({exc.strerror or exc})", path) from exc
    if len(raw) < size:
        raise CheckpointError("model file is truncated (header cut short)", path)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError("not a Rooftop Studio model (unreadable header)", path) from exc
    if not isinstance(header, dict):
        raise CheckpointError("not a Rooftop Studio model (unreadable header)", path)
    data_end = max(
        (
            int(v["data_offsets"][1])
            for k, v in header.items()
            if k != "__metadata__" and isinstance(v, dict) and "data_offsets" in v
        ),
        default=0,
    )
    if 8 + size + data_end > file_size:
        raise CheckpointError(
            f"model file is truncated ({file_size:,} bytes, its header needs {8 + size + data_end:,})",
            path,
        )
    return header, 8 + size


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata document of a checkpoint, without loading any tensor or importing torch."""
    path = Path(path)
    header, _ = _read_header(path)
    meta = header.get("__metadata__") or {}
    if meta.get("format") != FORMAT or "rooftop" not in meta:
        raise CheckpointError(
            "is a safetensors file but not a Rooftop Studio model (no rooftop metadata)", path
        )
    try:
        doc = json.loads(meta["rooftop"])
    except json.JSONDecodeError as exc:
        raise CheckpointError("model metadata is corrupt", path) from exc
    if not isinstance(doc, dict) or "arch" not in doc:
        raise CheckpointError("model metadata is corrupt (no architecture)", path)
    return doc


@dataclass(frozen=True)
class ModelInfo:
    """A checkpoint as listed in a models folder (from its metadata only)."""

    path: Path
    version: int
    created: str
    arch: str
    val_iou: float | None
    threshold: float
    epochs_done: int

    @property
    def name(self) -> str:
        return self.path.stem


def model_version(path: str | Path) -> int | None:
    match = _MODEL_NAME.match(Path(path).name)
    return int(match.group(1)) if match else None


def remove_stale_model_temp_files(models_dir: str | Path) -> list[Path]:
    """Delete the leftovers of checkpoint writes killed midway in ``models_dir``: only the stale
    temporary files of ``model_vN.*`` files (core.io.remove_stale_temp_files), since the folder
    may be one the user chose, holding more. Quiet; returns the files deleted."""
    try:
        names = os.listdir(models_dir)
    except OSError:  # not made yet, or unreadable
        return []
    targets = {
        t for t in map(temp_file_target, names) if t is not None and model_version(t) is not None
    }
    if not targets:
        return []
    return remove_stale_temp_files(models_dir, names=names, targets=targets)


def list_models(models_dir: str | Path) -> list[ModelInfo]:
    """Checkpoints ``model_vN.safetensors`` in a folder, newest version last. Unreadable ones are
    skipped (they are reported when someone tries to load them)."""
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        return []
    found = []
    for entry in models_dir.iterdir():
        version = model_version(entry)
        if version is None:
            continue
        try:
            meta = read_metadata(entry)
        except CheckpointError:
            continue
        found.append(
            ModelInfo(
                path=entry,
                version=version,
                created=str(meta.get("created", "")),
                arch=str(meta.get("arch")),
                val_iou=meta.get("metrics", {}).get("val_iou"),
                threshold=float(meta.get("threshold", 0.5)),
                epochs_done=len(meta.get("history", [])),
            )
        )
    return sorted(found, key=lambda info: info.version)


def next_model_path(models_dir: str | Path) -> Path:
    """``models_dir/model_vN.safetensors`` with N one more than the highest present (any suffix)."""
    models_dir = Path(models_dir)
    highest = 0
    if models_dir.is_dir():
        for entry in models_dir.iterdir():
            match = re.match(r"^model_v(\d+)\.", entry.name)
            if match:
                highest = max(highest, int(match.group(1)))
    return models_dir / f"model_v{highest + 1}{SUFFIX}"


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state_dict into tensors and a JSON-able remainder."""
    import torch

    tensors: dict[str, torch.Tensor] = {}
    plain_state: dict[str, dict[str, Any]] = {}
    for index, entries in state["state"].items():
        plain: dict[str, Any] = {}
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{index}.{key}"] = value.detach().cpu().contiguous()
                plain[key] = {"tensor": f"optimizer.{index}.{key}"}
            else:
                plain[key] = value
        plain_state[str(index)] = plain
    return tensors, {"state": plain_state, "param_groups": state["param_groups"]}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], doc: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for index, entries in doc["state"].items():
        state[int(index)] = {
            key: tensors[value["tensor"]]
            if isinstance(value, dict) and "tensor" in value
            else value
            for key, value in entries.items()
        }
    return {"state": state, "param_groups": doc["param_groups"]}


def save_checkpoint(
    path: str | Path,
    model: torch.nn.Module,
    metadata: dict[str, Any],
    optimizer_state: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically. ``metadata`` must be JSON-serialisable."""
    from safetensors.torch import save

    path = Path(path)
    doc = {"arch": model.arch, "arch_params": model.params(), "created": utc_now(), **metadata}
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if optimizer_state is not None:
        opt_tensors, opt_doc = _flatten_optimizer(optimizer_state)
        tensors.update(opt_tensors)
        doc["optimizer"] = opt_doc
    header = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "rooftop": json.dumps(doc, default=str),
    }
    write_bytes_atomic(path, save(tensors, metadata=header))
    return path


def input_stretch_of(meta: dict[str, Any], path: Path) -> str:
    """The input stretch a checkpoint's model was trained with (``none`` for files written before
    there was a choice); a CheckpointError for one this version does not know."""
    from core.input_stretch import STRETCHES

    name = meta.get("input_stretch", "none")
    if name not in STRETCHES:
        raise CheckpointError(
            f"the model expects input stretch {name!r}, which this version does not know "
            f"(known: {', '.join(STRETCHES)}); update Rooftop Studio",
            path,
        )
    return name


def resolution_of(meta: dict[str, Any], path: Path) -> float | None:
    """The ground resolution (cm per pixel) a checkpoint's model learnt at, None when unknown;
    a CheckpointError for a value that is not a positive number."""
    value = meta.get("resolution_cm")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise CheckpointError(
            f"resolution_cm must be a positive number of cm per pixel, got {value!r}", path
        )
    return float(value)


@dataclass
class LoadedModel:
    """A model rebuilt from a checkpoint, in eval mode, with its metadata."""

    model: Any  # torch.nn.Module
    arch: str
    arch_params: dict[str, Any]
    metadata: dict[str, Any]
    path: Path
    threshold: float
    optimizer_state: dict[str, Any] | None = None


def load_checkpoint(
    path: str | Path, device: Any = "cpu", with_optimizer: bool = False
) -> LoadedModel:
    """Rebuild a model from a checkpoint without unpickling anything."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from core.models import build_model

    path = Path(path)
    meta = read_metadata(path)
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"model file is corrupt ({exc})", path) from exc
    arch, params = meta["arch"], meta.get("arch_params", {})
    try:
        model = build_model(arch, **params)
    except CheckpointError as exc:
        raise CheckpointError(exc.reason, path) from exc
    weights = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = "; ".join(line.strip() for line in first[1:3]) or first[0]
        raise CheckpointError(f"weights do not fit architecture {arch!r} ({detail})", path) from exc
    model.to(device).eval()
    model.input_stretch = input_stretch_of(meta, path)
    model.ground_resolution_cm = resolution_of(meta, path)
    optimizer_state = None
    if with_optimizer and "optimizer" in meta:
        optimizer_state = _unflatten_optimizer(tensors, meta["optimizer"])
    return LoadedModel(
        model=model,
        arch=arch,
        arch_params=params,
        metadata=meta,
        path=path,
        threshold=float(meta.get("threshold", 0.5)),
        optimizer_state=optimizer_state,
    )
