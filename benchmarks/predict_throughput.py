"""Prediction throughput: the original's tiling against ours, and the single-pass ceiling.

On one square image (the synthetic demo scene, or random pixels with ``--image random``), for each
architecture asked for, in the same process and interleaved repeat by repeat:

(a) the original's way: 500 x 500 tiles without overlap, one batch per row of tiles, NCHW float32,
    sigmoid, stitched with concatenate; the right/bottom remainder that does not fill a tile is
    dropped, as the original did (its megapixels/s counts only the pixels it covered, which
    flatters it). For a model whose size multiple does not divide 500 (``unet``: 16), each tile is
    reflect-padded to the next multiple and the output cropped back.
(b) ours: ``core.predict.predict_probabilities`` (tile 512, overlap 64, blending, every pixel).
(c) the ceiling: ``core.predict.predict_whole`` (one forward pass over the whole image).

(b) and (c) run at ``--precision`` (default ``auto``, what users get: bfloat16 on a GPU or on a
CPU with native bfloat16; ``fp32`` for plain float32, like (a)).

Prints one JSON object: megapixels/s of each (median of the repeats), ratios b/a and b/c, and
with ``--big`` the peak resident memory of (b) on a 10000 x 10000 image, measured in a fresh
subprocess with ``resource.getrusage(...).ru_maxrss``.

Quick run (about a minute): ``python benchmarks/predict_throughput.py --archs prescribed --repeats 1``
Full run: ``python benchmarks/predict_throughput.py --repeats 3 --big``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Timer, demo_image, emit, machine, median, note, rnd  # noqa: E402

TARGETS = {"b_over_a": 2.0, "b_over_c": 0.6, "peak_gb_10000": 3.0}


def build(arch: str, device):
    import torch

    from core.models import build_model

    torch.manual_seed(0)
    return build_model(arch).to(device).eval()


def original_way(model, image, device, tile: int = 500):
    """The original's large-image prediction: non-overlapping tiles, row by row, edges dropped."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    multiple = getattr(model, "size_multiple", 1)
    pad = (-tile) % multiple
    h, w = image.shape[:2]
    rows = []
    with torch.no_grad():
        for y in range(0, h - tile + 1, tile):
            tiles = [image[y : y + tile, x : x + tile] for x in range(0, w - tile + 1, tile)]
            x = torch.from_numpy(np.stack(tiles)).to(device).permute(0, 3, 1, 2).float().div(255.0)
            x = x.contiguous()  # NCHW, as ToTensor gave it
            if pad:
                x = F.pad(x, (0, pad, 0, pad), mode="reflect")
            prob = torch.sigmoid(model(x))[:, 0, :tile, :tile].cpu().numpy()
            rows.append(np.concatenate(list(prob), axis=1))
    return np.concatenate(rows, axis=0)


def peak_child(
    arch: str, size: int, tile: int, overlap: int, batch: int, device: str, precision: str
) -> None:
    """Runs in a fresh process: peak RSS of predict_probabilities on a size x size image."""
    import resource

    import numpy as np
    import torch

    from core.predict import predict_probabilities, resolve_device

    dev = resolve_device(device)
    model = build(arch, dev)
    # filled block by block: one integers() call for the whole image would itself peak at GBs
    rng = np.random.default_rng(0)
    image = np.empty((size, size, 3), np.uint8)
    for y in range(0, size, 512):
        image[y : y + 512] = rng.integers(0, 256, image[y : y + 512].shape, dtype=np.uint8)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    with Timer() as t:
        prob = predict_probabilities(
            model,
            image,
            tile=tile,
            overlap=overlap,
            device=dev,
            batch_size=batch,
            precision=precision,
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    out = {
        "arch": arch,
        "size": size,
        "seconds": rnd(t.seconds, 2),
        "rss_before_gb": rnd(before),
        "peak_rss_gb": rnd(peak),
        "input_gb": rnd(image.nbytes / 2**30),
        "output_gb": rnd(prob.nbytes / 2**30),
    }
    if dev.type == "cuda":
        out["cuda_peak_gb"] = rnd(torch.cuda.max_memory_allocated() / 2**30)
    print(json.dumps(out))


def measure_peak(args, arch: str) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--_peak-child",
        arch,
        "--big-size",
        str(args.big_size),
        "--tile",
        str(args.tile),
        "--overlap",
        str(args.overlap),
        "--batch-size",
        str(args.batch_size),
        "--device",
        args.device,
        "--precision",
        args.precision,
    ]
    note(f"[{arch}] peak memory on {args.big_size}^2 in a subprocess ...")
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip()[-2000:], "returncode": proc.returncode}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["target_met"] = result["peak_rss_gb"] < TARGETS["peak_gb_10000"]
    return result


def bench_arch(args, arch: str, image, device) -> dict:
    from core.device import precision_name, resolve_precision
    from core.predict import predict_probabilities, predict_whole

    model = build(arch, device)
    h, w = image.shape[:2]
    image_mp = h * w / 1e6
    covered_mp = (h // 500 * 500) * (w // 500 * 500) / 1e6

    def run_a():
        return original_way(model, image, device)

    def run_b():
        return predict_probabilities(
            model,
            image,
            tile=args.tile,
            overlap=args.overlap,
            device=device,
            batch_size=args.batch_size,
            precision=args.precision,
        )

    def run_c():
        return predict_whole(model, image, device=device, precision=args.precision)

    runs = {"a": run_a, "b": run_b}
    if not args.no_whole:
        runs["c"] = run_c
    note(f"[{arch}] warm-up ...")
    small = image[:1024, :1024]
    predict_probabilities(
        model, small, tile=args.tile, overlap=args.overlap, device=device, precision=args.precision
    )
    original_way(model, small, device)
    times: dict[str, list[float]] = {k: [] for k in runs}
    for rep in range(args.repeats):
        for key, fn in runs.items():
            with Timer() as t:
                fn()
            if device.type == "cuda":
                import torch

                torch.cuda.synchronize()
            times[key].append(t.seconds)
            note(f"[{arch}] repeat {rep + 1}/{args.repeats} {key}: {t.seconds:.2f} s")
    sec = {k: median(v) for k, v in times.items()}
    out = {
        "a_original": {
            "seconds": rnd(sec["a"]),
            "mp_per_s": rnd(covered_mp / sec["a"]),
            "covered_mp": rnd(covered_mp),
            "all_seconds": [rnd(s) for s in times["a"]],
            "note": "500 px tiles, no overlap, edges dropped; MP/s over covered pixels",
        },
        "b_ours_tiled": {
            "seconds": rnd(sec["b"]),
            "mp_per_s": rnd(image_mp / sec["b"]),
            "tile": args.tile,
            "overlap": args.overlap,
            "batch_size": args.batch_size,
            "precision": precision_name(resolve_precision(args.precision, device, model)),
            "all_seconds": [rnd(s) for s in times["b"]],
        },
    }
    b_over_a = (image_mp / sec["b"]) / (covered_mp / sec["a"])
    out["ratio_b_over_a"] = rnd(b_over_a)
    out["target_b_over_a_met"] = b_over_a >= TARGETS["b_over_a"]
    if "c" in sec:
        out["c_whole_pass"] = {
            "seconds": rnd(sec["c"]),
            "mp_per_s": rnd(image_mp / sec["c"]),
            "all_seconds": [rnd(s) for s in times["c"]],
        }
        b_over_c = sec["c"] / sec["b"]
        out["ratio_b_over_c"] = rnd(b_over_c)
        out["target_b_over_c_met"] = b_over_c >= TARGETS["b_over_c"]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("--size", type=int, default=4096, help="image side in pixels (4096)")
    parser.add_argument(
        "--image",
        choices=("demo", "random"),
        default="demo",
        help="the synthetic demo scene (default) or uniform random pixels",
    )
    parser.add_argument(
        "--archs",
        default="prescribed,liteunet",
        help="comma-separated architectures (prescribed,liteunet: the original's and our default)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats, median reported (3)")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--overlap", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=4, help="tiles per forward pass in (b)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    parser.add_argument(
        "--precision",
        default="auto",
        choices=("auto", "fp32", "bf16"),
        help="arithmetic of (b) and (c) and of the peak-memory run (auto)",
    )
    parser.add_argument(
        "--threads", type=int, default=0, help="torch intra-op threads (0: default)"
    )
    parser.add_argument(
        "--no-whole",
        action="store_true",
        help="skip (c), the single whole-image pass (needs several GB at 4096^2)",
    )
    parser.add_argument(
        "--big",
        action="store_true",
        help="also measure peak memory of (b) on a --big-size image (subprocess)",
    )
    parser.add_argument("--big-size", type=int, default=10000)
    parser.add_argument("--_peak-child", dest="peak_child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.peak_child:
        peak_child(
            args.peak_child,
            args.big_size,
            args.tile,
            args.overlap,
            args.batch_size,
            args.device,
            args.precision,
        )
        return 0

    from core.predict import resolve_device

    device = resolve_device(args.device)
    if args.image == "demo":
        image = demo_image(args.size)
    else:
        import numpy as np

        image = np.random.default_rng(0).integers(0, 256, (args.size, args.size, 3), np.uint8)
    started = time.time()
    result: dict = {
        "benchmark": "predict_throughput",
        "image": f"{args.image} {args.size}x{args.size}",
        "device": str(device),
        "repeats": args.repeats,
        "targets": TARGETS,
        "machine": machine(),
        "archs": {},
    }
    for arch in [a.strip() for a in args.archs.split(",") if a.strip()]:
        result["archs"][arch] = bench_arch(args, arch, image, device)
        if args.big:
            result["archs"][arch]["peak_memory_big"] = measure_peak(args, arch)
    result["wall_seconds"] = rnd(time.time() - started, 1)
    result["command"] = " ".join(["python", "benchmarks/predict_throughput.py", *sys.argv[1:]])
    emit(result)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
