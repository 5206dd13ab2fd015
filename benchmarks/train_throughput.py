"""Training throughput: a loop built the original's way against ours (``core.training.loop.train``).

One dataset of 512 x 512 patches is cut from the synthetic demo scene (``core.synthetic.write_demo``
+ ``core.generate.generate_dataset``, cached under $TMPDIR/rooftop-bench) and both loops train the
prescribed model on the same patches, one after the other in this process:

(a) the original's way: a torch Dataset that opens each PNG with PIL and resizes it to 512 at every
    access, NCHW float32 tensors, sigmoid outputs into BCE with reduction "sum", a DataLoader with
    ``--workers`` worker processes (the original used 4; this 2-core machine allows 2), Adam 1e-4,
    ``loss.item()`` after every batch;
(b) ours: ``core.training.loop.train`` with the same architecture, batch size and samples per epoch, crop
    size 512 (whole patches, like for like), no validation split (it is not training throughput),
    at ``precision="auto"`` (what users get: bfloat16 mixed precision on a GPU; float32 on the
    CPU for this model, whose narrow convolutions do not gain from bfloat16), and again at
    ``fp32`` (``b_ours_fp32``) when auto picked bfloat16, so the gain of each part is visible.

Samples/s are reported over all epochs and over the steady state (epochs after the first: the
first pays for worker start-up in (a) and for the one-time decode into the uint8 cache in (b)).

Quick run (2-3 minutes on 2 cores): ``python benchmarks/train_throughput.py``
Closer to the original: ``python benchmarks/train_throughput.py --batch-size 32 --samples 128 --epochs 3 --workers 4``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import demo_dataset, emit, machine, note, rnd  # noqa: E402

TARGET_RATIO = 3.0


class OriginalPatches:
    """The original data.py: decode + resize every PNG at every access (a torch Dataset)."""

    def __init__(self, samples, size: int = 512) -> None:
        self.samples, self.size = samples, size

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        import numpy as np
        import torch
        from PIL import Image

        sample = self.samples[index]
        image = Image.open(sample.image_path).convert("RGB").resize((self.size, self.size))
        label = Image.open(sample.label_path).convert("L").resize((self.size, self.size))
        x = torch.from_numpy(np.array(image)).permute(2, 0, 1).float().div(255.0).contiguous()
        y = torch.from_numpy(np.array(label)).float().div(255.0)[None]
        return x, y


def _throughput(stamps: list[tuple[int, float, int]], start: float) -> dict:
    """stamps: (epoch, time, samples in batch). All epochs and epochs after the first."""
    total = sum(n for _, _, n in stamps)
    out = {
        "samples": total,
        "seconds": rnd(stamps[-1][1] - start),
        "samples_per_s": rnd(total / (stamps[-1][1] - start)),
    }
    first_epoch = stamps[0][0]
    first_end = max(t for e, t, _ in stamps if e == first_epoch)
    later = [(t, n) for e, t, n in stamps if e != first_epoch]
    if later:
        n_later = sum(n for _, n in later)
        out["steady_samples"] = n_later
        out["steady_seconds"] = rnd(later[-1][0] - first_end)
        out["steady_samples_per_s"] = rnd(n_later / (later[-1][0] - first_end))
    return out


class GpuSampler:
    """Samples GPU utilisation (pynvml / torch.cuda.utilization) every 100 ms in a thread."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import torch

        while not self._stop.wait(0.1):
            try:
                self.values.append(float(torch.cuda.utilization()))
            except Exception:  # noqa: BLE001 - no pynvml: no figure
                return

    def __enter__(self) -> GpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict | None:
        if not self.values:
            return None
        v = sorted(self.values)
        return {"mean_percent": rnd(sum(v) / len(v), 1), "median_percent": v[len(v) // 2]}


def run_original(samples, args, device) -> dict:
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader

    from core.models import build_model

    torch.manual_seed(0)
    model = build_model("prescribed").to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    loader = DataLoader(
        OriginalPatches(samples),
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=args.workers,
        pin_memory=device.type == "cuda",
    )
    stamps: list[tuple[int, float, int]] = []
    gpu = GpuSampler() if device.type == "cuda" else None
    start = time.perf_counter()
    with gpu or _null():
        for epoch in range(1, args.epochs + 1):
            total = 0.0
            for x, y in loader:
                x, y = x.to(device), y.to(device)
                optimizer.zero_grad()
                prob = torch.sigmoid(model(x))
                loss = F.binary_cross_entropy(prob, y, reduction="sum")
                loss.backward()
                optimizer.step()
                total += loss.item()
                stamps.append((epoch, time.perf_counter(), len(x)))
            note(
                f"(a) original epoch {epoch}: {time.perf_counter() - start:.1f} s, loss {total:.4g}"
            )
    out = _throughput(stamps, start)
    if gpu is not None:
        out["gpu_utilisation"] = gpu.summary()
    return out


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


def run_ours(dataset, n_samples: int, args, device, precision: str) -> dict:
    import dataclasses

    from core.training.config import BatchProgress, EpochResult, TrainConfig, TrainingStarted
    from core.training.loop import train

    label = "(b)" if precision == "auto" else f"(b, {precision})"
    wanted = dict(
        arch="prescribed",
        epochs=args.epochs,
        batch_size=args.batch_size,
        crop_size=512,
        samples_per_epoch=n_samples,
        val_fraction=0.0,
        device=str(device),
        seed=0,
        # like for like with (a): the original's optimiser, loss and no extra augmentation
        lr=1e-4,
        loss="bce",
        optimizer="adam",
        scale_jitter=0.0,
        photometric=False,
        balance=0.0,
        tune_threshold=False,
        precision=precision,
    )
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    config = TrainConfig(**{k: v for k, v in wanted.items() if k in known})
    stamps: list[tuple[int, float, int]] = []
    last_seen = [0]

    started: list = []

    def on_progress(event) -> None:
        if isinstance(event, TrainingStarted):
            started.append(event)
        elif isinstance(event, BatchProgress):
            stamps.append((event.epoch, time.perf_counter(), event.samples_seen - last_seen[0]))
            last_seen[0] = event.samples_seen
        elif isinstance(event, EpochResult):
            note(
                f"{label} ours epoch {event.epoch}: {time.perf_counter() - start:.1f} s, "
                f"loss {event.train_loss:.4g}"
            )

    gpu = GpuSampler() if device.type == "cuda" else None
    with tempfile.TemporaryDirectory(prefix="rooftop-bench-models-") as models_dir:
        start = time.perf_counter()
        with gpu or _null():
            train(dataset, models_dir, config, on_progress=on_progress)
    out = _throughput(stamps, start)
    # the precision the run used, as the trainer chose it for this model and device
    out["precision"] = next((e.precision for e in started), None)
    if gpu is not None:
        out["gpu_utilisation"] = gpu.summary()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=8,
        help="batch size of both loops (8; the original used 32)",
    )
    parser.add_argument(
        "--samples",
        type=int,
        default=48,
        help="samples per epoch (patches used), capped at the train split (48)",
    )
    parser.add_argument("--epochs", type=int, default=3, help="epochs of each loop (3)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of (a) (2)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    parser.add_argument(
        "--scene", type=int, default=1024, help="demo scene side the patches come from"
    )
    parser.add_argument("--order", choices=("ab", "ba"), default="ab", help="which loop runs first")
    parser.add_argument(
        "--no-fp32",
        action="store_true",
        help="skip the extra float32 run of ours when auto picks bfloat16",
    )
    args = parser.parse_args(argv)

    import torch

    from core.dataset import open_dataset
    from core.device import resolve_device

    device = resolve_device(args.device)
    dataset = demo_dataset(scene=args.scene, patch="512:0.25", resize=512)
    train_samples = open_dataset(dataset).train
    n = min(args.samples, len(train_samples))
    # ours takes the first n images (samples_per_epoch cycles through 0..n-1 each epoch); so does (a)
    from core.training.data import split_validation

    ours_images, _ = split_validation(train_samples, 0.0, 0)
    subset = ours_images[:n]
    note(f"dataset {dataset}: {len(train_samples)} train patches, using {n} per epoch")

    from core.device import resolve_precision
    from core.models import ARCHITECTURES

    runs = {
        "a": lambda: run_original(subset, args, device),
        "b": lambda: run_ours(dataset, n, args, device, "auto"),
    }
    results = {}
    for key in args.order:
        results[key] = runs[key]()
    extra = {}
    if (
        not args.no_fp32
        and resolve_precision("auto", device, ARCHITECTURES["prescribed"]) is not None
    ):
        fp32 = run_ours(dataset, n, args, device, "fp32")
        key = "steady_samples_per_s" if "steady_samples_per_s" in fp32 else "samples_per_s"
        extra = {
            "b_ours_fp32": fp32,
            "ratio_b_fp32_over_a_steady": rnd(fp32[key] / results["a"][key]),
        }
    a, b = results["a"], results["b"]
    ratio_all = b["samples_per_s"] / a["samples_per_s"]
    key = "steady_samples_per_s"
    ratio_steady = b[key] / a[key] if key in a and key in b else None
    emit(
        {
            "benchmark": "train_throughput",
            "device": str(device),
            "model": "prescribed",
            "batch_size": args.batch_size,
            "samples_per_epoch": n,
            "epochs": args.epochs,
            "workers_original": args.workers,
            "torch_threads": torch.get_num_threads(),
            "a_original": a,
            "b_ours": b,
            "ratio_b_over_a_all_epochs": rnd(ratio_all),
            "ratio_b_over_a_steady": rnd(ratio_steady),
            **extra,
            "target_ratio": TARGET_RATIO,
            "target_met": (ratio_steady or ratio_all) >= TARGET_RATIO,
            "machine": machine(),
            "command": " ".join(["python", "benchmarks/train_throughput.py", *sys.argv[1:]]),
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
