"""Shared helpers for the benchmark scripts (not a test, not part of the app).

Each script prints ONE JSON object on stdout; progress notes go to stderr.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as `python benchmarks/x.py` from anywhere
    sys.path.insert(0, str(REPO))

CACHE_DIR = Path(
    os.environ.get("ROOFTOP_BENCH_CACHE", Path(tempfile.gettempdir()) / "rooftop-bench")
)


def note(*parts: Any) -> None:
    """Progress text on stderr (stdout carries only the JSON result)."""
    print(*parts, file=sys.stderr, flush=True)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpu": cpu_name(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }
    try:
        info["load_avg_1m"] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    return info


def median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def rnd(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(float(value), digits)


def emit(result: dict[str, Any]) -> None:
    print(json.dumps(result, indent=2, default=str), flush=True)


class Timer:
    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.seconds = time.perf_counter() - self.start


def demo_dataset(
    scene: int = 1024, patch: str = "512:0.25", resize: int = 512, seed: int = 0
) -> Path:
    """A dataset cut from the synthetic demo scene, generated once and cached on disk."""
    from core.generate import GenerateConfig, PatchSpec, generate_dataset
    from core.synthetic import write_demo

    key = f"scene{scene}_s{seed}_p{patch.replace(':', '-')}_r{resize}"
    root = CACHE_DIR / key
    dataset = root / "dataset"
    if (dataset / "train" / "data").is_dir() and any((dataset / "train" / "data").iterdir()):
        return dataset
    note(f"generating the demo dataset {key} in {root} ...")
    image, labels = write_demo(root / "scene", size=scene, seed=seed)
    config = GenerateConfig(patches=(PatchSpec.parse(patch),), resize=resize, overwrite=True)
    return Path(generate_dataset(image, labels, dataset, config).dataset_dir)


def demo_image(size: int, seed: int = 0):
    """The synthetic demo scene as an (H, W, 3) uint8 array (cached as .npy)."""
    import numpy as np

    path = CACHE_DIR / f"scene_{size}_s{seed}.npy"
    if path.is_file():
        return np.load(path)
    from core.synthetic import make_scene

    note(f"making a {size} x {size} demo scene ...")
    image, _mask = make_scene(size=size, seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, image)
    return image


def parse_fields(items: list[str]) -> dict[str, Any]:
    """``--set FIELD=JSON`` arguments as a dict of TrainConfig fields (exploring)."""
    fields = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set/--variant: expected FIELD=JSON, got {item!r}")
        fields[key] = json.loads(value)
    return fields
