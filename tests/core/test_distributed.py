"""More than one process (issue 17): training and prediction under torchrun, on the CPU (gloo),
two processes on loopback addresses only, each run bounded by a timeout.

Training: one model (one checkpoint, rank 0's), each rank its own crops, the loss falls, resume
works both ways; a stop asked on one rank stops both on the same batch; a rank that fails makes
the other exit with an error within the timeout, leaving no checkpoint. Prediction: several
images and one orthophoto split into row strips equal a single process's outputs bit for bit.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
rasterio = pytest.importorskip("rasterio")

from affine import Affine  # noqa: E402

from core.checkpoint import load_checkpoint, read_metadata  # noqa: E402
from core.training.config import BatchProgress, TrainConfig  # noqa: E402
from tests.factories import bright_squares, save_untrained_model, write_dataset  # noqa: E402

BIN = Path(sys.executable).parent
TORCHRUN, ROOFTOP = BIN / "torchrun", BIN / "rooftop"
#: The longest a launch of two processes may take here (2 shared cores: ~10 s each).
RUN_TIMEOUT = 150
TRAIN_ARGS = [
    "--arch",
    "prescribed",
    "--batch-size",
    "2",
    "--crop-size",
    "64",
    "--samples-per-epoch",
    "8",
    "--device",
    "cpu",
    "--precision",
    "fp32",
    "--lr",
    "0.01",
    "--val-fraction",
    "0.2",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env(**extra) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
    }
    env.update(ROOFTOP_DIST_TIMEOUT="30", OMP_NUM_THREADS="1", **extra)
    return env


def _torchrun(*args: str) -> subprocess.CompletedProcess:
    if not TORCHRUN.exists() or not ROOFTOP.exists():
        pytest.skip("torchrun or the rooftop script is not installed beside this Python")
    command = [
        str(TORCHRUN),
        "--nproc-per-node",
        "2",
        "--rdzv-backend",
        "c10d",
        "--rdzv-endpoint",
        f"127.0.0.1:{_free_port()}",
        str(ROOFTOP),
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=RUN_TIMEOUT, env=_env())


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_dataset(
        tmp_path_factory.mktemp("dist") / "ds", n_train=6, n_test=1, draw=bright_squares
    )


def _quick(**kw) -> TrainConfig:
    base = dict(
        arch="prescribed",
        batch_size=2,
        crop_size=64,
        samples_per_epoch=8,
        device="cpu",
        precision="fp32",
        lr=0.01,
        val_fraction=0.2,
    )
    base.update(kw)
    return TrainConfig(**base)


# ----------------------------------------------------------------- no processes needed
def test_launch_env_and_one_process_defaults(monkeypatch):
    from core.errors import ConfigError
    from core.training import distributed

    assert distributed.launch_env({}) is None
    assert distributed.launch_env({"WORLD_SIZE": "1", "RANK": "0"}) is None  # one process
    launch = distributed.launch_env({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"})
    assert (launch.world_size, launch.rank, launch.local_rank) == (4, 3, 1)
    with pytest.raises(ConfigError):
        distributed.launch_env({"WORLD_SIZE": "2", "RANK": "two"})
    assert distributed.timeout_seconds({}) == distributed.DEFAULT_TIMEOUT_SECONDS
    assert distributed.timeout_seconds({distributed.TIMEOUT_ENV: "7.5"}) == 7.5
    with pytest.raises(ConfigError):
        distributed.timeout_seconds({distributed.TIMEOUT_ENV: "0"})
    # Without a process group everything is one process.
    assert not distributed.is_active() and distributed.is_main()
    assert distributed.agree(0.0, 3.0) == (0.0, 3.0) and not distributed.agree_stop(False)
    assert distributed.shard([1, 2, 3]) == [1, 2, 3] and distributed.gather("x") == ["x"]


def test_sync_batch_norm_weights_load_into_the_plain_model():
    """A GPU run converts batch norm to SyncBatchNorm; its state dict has the plain keys, so the
    checkpoint loads into the plain architecture on one process."""
    from core.models import build_model

    model = build_model("liteunet")
    synced = torch.nn.SyncBatchNorm.convert_sync_batchnorm(build_model("liteunet"))
    assert any(isinstance(m, torch.nn.SyncBatchNorm) for m in synced.modules())
    assert synced.state_dict().keys() == model.state_dict().keys()
    model.load_state_dict(synced.state_dict(), strict=True)


def test_row_strips_are_bit_for_bit_the_whole_image():
    from core.models import build_model
    from core.tiled_inference import array_reader, stream_probabilities, strip_rows

    torch.manual_seed(0)
    model = build_model("liteunet").eval()
    image = np.random.default_rng(1).integers(0, 256, (230, 100, 3), dtype=np.uint8)
    cpu = torch.device("cpu")

    def run(rows=None):
        return list(
            stream_probabilities(
                model, array_reader(image), 230, 100, cpu, None, tile=64, overlap=16, rows=rows
            )
        )

    whole = run()
    for parts in (2, 6):
        ranges = strip_rows(230, 100, 64, 16, model.size_multiple, parts)
        assert ranges[0][0] == 0 and ranges[-1][1] == 230
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))
        pieces = [piece for rows in ranges for piece in run(rows)]
        # the same pieces (row offsets and sizes), with the same bits
        assert [(r, len(p)) for r, p in pieces] == [(r, len(p)) for r, p in whole]
        assert all(np.array_equal(a[1], b[1]) for a, b in zip(pieces, whole, strict=True))


# ----------------------------------------------------------------- two processes, spawned
def _worker(
    rank: int,
    port: int,
    dataset: str,
    models: str,
    record: str,
    stop_at: int | None,
    fail_at: int | None,
) -> None:
    """One rank of a two-process training run (as torchrun would start it)."""
    os.environ.update(
        WORLD_SIZE="2",
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        ROOFTOP_DIST_TIMEOUT="10",
    )
    torch.set_num_threads(1)
    from core.training import data, loop

    crops: list[str] = []
    original = data.BatchLoader._prepare

    def recording(self, indices, seed):
        batch = original(self, indices, seed)
        crops.append(hashlib.sha1(batch.images.numpy().tobytes()).hexdigest())
        return batch

    data.BatchLoader._prepare = recording
    calls = [0]

    def should_stop() -> bool:
        calls[0] += 1
        if fail_at is not None and calls[0] == fail_at:
            raise RuntimeError(f"rank {rank} fails on purpose")
        return stop_at is not None and calls[0] >= stop_at

    events: list = []
    result = loop.train(
        dataset, models, _quick(epochs=50), on_progress=events.append, should_stop=should_stop
    )
    batches = sum(isinstance(e, BatchProgress) for e in events)
    Path(record, f"rank{rank}.json").write_text(
        json.dumps(
            {
                "crops": crops,
                "stopped": result.stopped,
                "batches": batches,
                "samples_seen": result.samples_seen,
            }
        )
    )


def _spawn(tmp_path, dataset, stop_at=None, fail_at=None, timeout=RUN_TIMEOUT):
    context = multiprocessing.get_context("spawn")
    port = _free_port()
    models, record = tmp_path / "models", tmp_path / "record"
    record.mkdir()
    saved = {k: os.environ.pop(k) for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK") if k in os.environ}
    procs = []
    try:
        for rank in (0, 1):
            proc = context.Process(
                target=_worker,
                args=(
                    rank,
                    port,
                    str(dataset),
                    str(models),
                    str(record),
                    stop_at if rank == 1 else None,
                    fail_at if rank == 1 else None,
                ),
            )
            proc.start()
            procs.append(proc)
        for proc in procs:
            proc.join(timeout)
    finally:
        os.environ.update(saved)
        for proc in procs:
            if proc.is_alive():
                proc.kill()
                proc.join(10)
    codes = [proc.exitcode for proc in procs]
    found = {int(p.stem[4:]): json.loads(p.read_text()) for p in record.glob("rank*.json")}
    return codes, found, models


def test_a_stop_on_one_rank_stops_both_on_the_same_batch(tmp_path, dataset):
    """Rank 1 asks to stop at its third batch: both ranks stop before that batch (none hangs in
    a collective), each rank drew its own crops, and rank 0 alone saves the model."""
    codes, found, models = _spawn(tmp_path, dataset, stop_at=3)
    assert codes == [0, 0]
    assert len(found[0]["crops"]) == len(found[1]["crops"]) == 2  # the same two batches
    assert not set(found[0]["crops"]) & set(found[1]["crops"])  # different crops
    assert found[0]["stopped"] == found[1]["stopped"] == "user"
    assert found[0]["batches"] == 2 and found[1]["batches"] == 0  # rank 0 alone reports
    assert found[0]["samples_seen"] == 2 * 2 * 2  # batches x crops x ranks
    assert [p.name for p in models.iterdir()] == ["model_v1.safetensors"]
    meta = read_metadata(models / "model_v1.safetensors")
    assert meta["stopped"] == "user" and meta["world_size"] == 2
    assert meta["global_batch_size"] == 4


def test_a_failing_rank_ends_the_run_with_an_error_and_no_checkpoint(tmp_path, dataset):
    codes, found, models = _spawn(tmp_path, dataset, fail_at=2, timeout=60)
    assert codes[1] != 0 and codes[0] not in (0, None)  # both ended, neither succeeded
    assert not found
    assert not models.exists() or not any(models.iterdir())  # no checkpoint, no temp file


# ----------------------------------------------------------------- torchrun, the command line
def test_torchrun_trains_one_model_and_resumes_both_ways(tmp_path, dataset):
    """One process's checkpoint resumed by two processes (one checkpoint written, JSON printed
    once, the loss falls), and theirs resumed by one process."""
    from core.training.loop import train

    models = tmp_path / "models"
    first = train(dataset, models, _quick(epochs=1))
    done = _torchrun(
        "train",
        "--data",
        str(dataset),
        "--models",
        str(models),
        *TRAIN_ARGS,
        "--epochs",
        "4",
        "--resume",
        str(first.model_path),
        "--json",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1  # rank 0 alone prints --json
    result = json.loads(lines[0])
    assert sorted(p.name for p in models.iterdir()) == [
        "model_v1.safetensors",
        "model_v2.safetensors",
    ]
    meta = read_metadata(models / "model_v2.safetensors")
    assert meta["world_size"] == 2 and meta["global_batch_size"] == 4
    assert meta["samples_seen"] == 8 + 4 * 8  # an epoch's 8 crops shared by the two ranks
    losses = [h["train_loss"] for h in result["history"]]
    assert len(losses) == 5 and losses[-1] < losses[0]
    assert "[rank 1]" not in done.stderr and done.stderr.count("finished: saved") == 1
    loaded = load_checkpoint(models / "model_v2.safetensors", with_optimizer=True)
    assert loaded.optimizer_state is not None
    again = train(dataset, models, _quick(epochs=1), resume_from=models / "model_v2.safetensors")
    assert len(again.history) == 6 and read_metadata(again.model_path)["world_size"] == 1


def _geotiff(path: Path, image: np.ndarray) -> Path:
    h, w = image.shape[:2]
    profile = dict(
        driver="GTiff",
        width=w,
        height=h,
        count=3,
        dtype="uint8",
        crs="EPSG:32633",
        transform=Affine(0.25, 0.0, 500_000.0, 0.0, -0.25, 5_000_000.0),
        tiled=True,
        blockxsize=128,
        blockysize=128,
        compress="deflate",
        nodata=0,
    )
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(np.moveaxis(image, -1, 0))
    return path


def test_torchrun_prediction_equals_one_process(tmp_path):
    """Four images dealt out and one orthophoto cut into two row strips (dilation across the
    strip edge, no data, probabilities, polygons): every output equals one process's."""
    from PIL import Image

    from core.predict_files import PolygonOutput, predict_files
    from core.synthetic import make_scene
    from core.vector.files import read_footprints

    model = save_untrained_model(tmp_path)
    inputs = tmp_path / "in"
    inputs.mkdir()
    scene, _mask = make_scene(320, seed=5)
    for i in range(4):
        Image.fromarray(scene[i * 40 : i * 40 + 64 + 8 * i, :96]).save(inputs / f"img{i}.png")
    ortho = scene[:300, :260].copy()
    ortho[:20, :30] = 0  # no data
    _geotiff(inputs / "ortho.tif", ortho)
    options = [
        "--tile",
        "64",
        "--overlap",
        "16",
        "--dilation",
        "3",
        "--probabilities",
        "--polygons",
        "gpkg",
        "--device",
        "cpu",
        "--precision",
        "fp32",
    ]
    done = _torchrun(
        "predict",
        "--model",
        str(model),
        "--out",
        str(tmp_path / "two"),
        str(inputs),
        *options,
        "--json",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1
    outputs = json.loads(lines[0])["outputs"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each torchrun process
    try:
        single = predict_files(
            model,
            [inputs],
            tmp_path / "one",
            tile=64,
            overlap=16,
            dilation=3,
            device="cpu",
            precision="fp32",
            probabilities=True,
            polygons=PolygonOutput("gpkg"),
        )
    finally:
        torch.set_num_threads(threads)
    assert [o["input"] for o in outputs] == [str(r.source) for r in single]
    for mine, theirs in zip(outputs, single, strict=True):
        assert mine["roof_fraction"] == theirs.roof_fraction
        assert mine["buildings"] == theirs.buildings and mine["roof_area"] == theirs.roof_area
    one, two = sorted((tmp_path / "one").iterdir()), sorted((tmp_path / "two").iterdir())
    assert [p.name for p in one] == [p.name for p in two]  # no strip files left
    for a, b in zip(one, two, strict=True):
        if a.suffix == ".png":
            assert a.read_bytes() == b.read_bytes(), a.name
        elif a.suffix == ".tif":
            with rasterio.open(a) as x, rasterio.open(b) as y:
                assert np.array_equal(x.read(), y.read()), a.name
                assert np.array_equal(x.read_masks(), y.read_masks()), a.name
                assert x.transform == y.transform and x.crs == y.crs
        else:
            geoms_a, _crs = read_footprints(a)
            geoms_b, _crs = read_footprints(b)
            assert [g.wkb for g in geoms_a] == [g.wkb for g in geoms_b], a.name
