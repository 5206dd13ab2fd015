"""Prediction through onnxruntime against torch on this machine's CPU, same image, same tiling.

    python benchmarks/onnx_engine.py [--size 2048] [--arch liteunet] [--repeats 2]

Exports an (untrained: the cost does not depend on the weights) model of ``--arch`` with
``core.onnx_export.export_onnx`` and predicts the synthetic demo scene with the tiled engine
(``core.tiled_inference``: tile 512, overlap 64) twice per repeat, interleaved: torch at the
default precision (``auto``: bfloat16 where the CPU has it) and onnxruntime (float32, the
exported graph). Prints one JSON object: Mpx/s of each (best of the repeats), their ratio, and
the largest difference between the two probability maps.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import demo_image, emit, machine, note, rnd  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--arch", default="liteunet")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    from core.checkpoint import load_checkpoint, save_checkpoint
    from core.device import resolve_precision
    from core.models import build_model
    from core.onnx_export import OnnxEngine, export_onnx
    from core.tiled_inference import array_reader, stream_probabilities

    image = demo_image(args.size)
    work = Path(tempfile.mkdtemp(prefix="rooftop-onnx-"))
    torch.manual_seed(0)
    model_path = save_checkpoint(work / "model_v1.safetensors", build_model(args.arch), {})
    note("exporting ...")
    exported = export_onnx(model_path, work / "model.onnx")
    loaded = load_checkpoint(model_path)
    model = loaded.model.eval()
    device = torch.device("cpu")
    amp = resolve_precision("auto", device, model)
    engine = OnnxEngine(exported.path)
    h, w = image.shape[:2]

    def run(use_engine: bool):
        out = np.empty((h, w), np.float32)
        start = time.perf_counter()
        for row, strip in stream_probabilities(
            model,
            array_reader(image),
            h,
            w,
            device,
            amp,
            engine=engine if use_engine else None,
            prefetch=False,
        ):
            out[row : row + len(strip)] = strip
        return time.perf_counter() - start, out

    times = {"torch": [], "onnxruntime": []}
    outputs = {}
    for repeat in range(args.repeats):
        for name in ("torch", "onnxruntime"):
            seconds, out = run(name == "onnxruntime")
            times[name].append(seconds)
            outputs[name] = out
            note(f"  repeat {repeat + 1}: {name} {seconds:.1f} s")
    mpx = h * w / 1e6
    result = {
        "benchmark": "onnx_engine",
        "machine": machine(),
        "arch": args.arch,
        "image": f"{w} x {h} demo scene",
        "torch_precision": "bf16" if amp else "fp32",
        "torch_mpx_s": rnd(mpx / min(times["torch"]), 2),
        "onnxruntime_mpx_s": rnd(mpx / min(times["onnxruntime"]), 2),
        "max_abs_difference": float(np.abs(outputs["torch"] - outputs["onnxruntime"]).max()),
    }
    result["onnxruntime_over_torch"] = rnd(result["onnxruntime_mpx_s"] / result["torch_mpx_s"], 3)
    emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
