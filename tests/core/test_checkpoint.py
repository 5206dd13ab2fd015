"""Checkpoints hold tensors and plain metadata; pickles are refused without being executed."""

import json
import pickle
import struct

import pytest
import torch

from core.checkpoint import (
    list_models,
    load_checkpoint,
    next_model_path,
    read_metadata,
    save_checkpoint,
)
from core.errors import CheckpointError
from core.models import build_model


class _Exploit:
    """Unpickling this creates a marker file: proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_round_trip_keeps_weights_and_metadata(tmp_path):
    model = build_model("unet", width=8, depth=2)
    path = save_checkpoint(
        tmp_path / "model_v1.safetensors", model, {"history": [{"epoch": 1}], "threshold": 0.4}
    )
    loaded = load_checkpoint(path)
    assert loaded.arch == "unet" and loaded.arch_params == {
        "width": 8,
        "depth": 2,
        "residual": False,
    }
    assert loaded.threshold == 0.4 and loaded.metadata["history"] == [{"epoch": 1}]
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.model.state_dict()[key])
    assert not loaded.model.training


@pytest.mark.parametrize("first_bytes", [b"\x80", b"PK"])
def test_a_header_length_that_starts_like_a_pickle_still_loads(tmp_path, first_bytes):
    # the file's first bytes are the header length's lowest ones: padding the metadata moves
    # the length until they read 0x80 (a pickle's signature) or "PK" (a zip's)
    model = build_model("prescribed")
    path = tmp_path / "model_v1.safetensors"
    save_checkpoint(path, model, {"note": ""})
    modulus = 256 ** len(first_bytes)
    target = int.from_bytes(first_bytes, "little")
    base = (target - struct.unpack("<Q", path.read_bytes()[:8])[0]) % modulus
    for pad in range(max(0, base - 16), base + 17):  # the header is padded to 8 bytes
        save_checkpoint(path, model, {"note": "x" * pad})
        if path.read_bytes()[: len(first_bytes)] == first_bytes:
            break
    else:
        pytest.fail("no padding gave the wanted first bytes")
    loaded = load_checkpoint(path)
    assert loaded.metadata["note"] == "x" * pad and loaded.arch == "prescribed"


def test_optimizer_state_round_trips(tmp_path):
    model = build_model("prescribed")
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.rand(1, 3, 16, 16)).mean().backward()
    opt.step()
    path = save_checkpoint(tmp_path / "m.safetensors", model, {}, optimizer_state=opt.state_dict())
    state = load_checkpoint(path, with_optimizer=True).optimizer_state
    fresh = torch.optim.Adam(build_model("prescribed").parameters(), lr=1e-3)
    fresh.load_state_dict(state)
    assert torch.equal(
        fresh.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"]
    )


def test_next_model_path_counts_up(tmp_path):
    assert next_model_path(tmp_path).name == "model_v1.safetensors"
    (tmp_path / "model_v1.safetensors").touch()
    (tmp_path / "model_v7.pth").touch()
    assert next_model_path(tmp_path).name == "model_v8.safetensors"


def test_list_models_reads_metadata_without_loading(tmp_path):
    save_checkpoint(
        tmp_path / "model_v2.safetensors",
        build_model("prescribed"),
        {"metrics": {"val_iou": 0.7}, "history": [{}, {}]},
    )
    (tmp_path / "model_v3.safetensors").write_bytes(b"garbage")
    models = list_models(tmp_path)
    assert [m.version for m in models] == [2]
    assert (
        models[0].val_iou == 0.7 and models[0].epochs_done == 2 and models[0].arch == "prescribed"
    )


def test_pickled_module_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "model_v1.pth"
    with open(path, "wb") as handle:
        pickle.dump(_Exploit(marker), handle)
    with pytest.raises(CheckpointError, match="pickled PyTorch file"):
        load_checkpoint(path)
    assert not marker.exists()


def test_torch_save_zip_file_is_refused(tmp_path):
    path = tmp_path / "model_v1.pth"
    torch.save(build_model("prescribed"), path)  # what the original did
    with pytest.raises(CheckpointError, match="refuses it"):
        load_checkpoint(path)


def test_truncated_checkpoint(tmp_path):
    path = save_checkpoint(tmp_path / "m.safetensors", build_model("prescribed"), {})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    "content,match",
    [(b"", "empty"), (b"hello world, not a model", "not a Rooftop"), (b"\x01", "too short")],
)
def test_garbage_files(tmp_path, content, match):
    path = tmp_path / "m.safetensors"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.safetensors")
    with pytest.raises(CheckpointError, match="folder"):
        load_checkpoint(tmp_path)


def test_foreign_safetensors_file_is_refused(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(CheckpointError, match="not a Rooftop Studio model"):
        read_metadata(path)


def _rewrite_metadata(path, change):
    raw = path.read_bytes()
    (size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + size])
    doc = json.loads(header["__metadata__"]["rooftop"])
    change(doc)
    header["__metadata__"]["rooftop"] = json.dumps(doc)
    new = json.dumps(header).encode()
    new += b" " * ((8 - len(new) % 8) % 8)
    path.write_bytes(struct.pack("<Q", len(new)) + new + raw[8 + size :])


def test_weights_of_another_architecture_are_a_clear_error(tmp_path):
    path = save_checkpoint(tmp_path / "m.safetensors", build_model("prescribed"), {})
    _rewrite_metadata(
        path, lambda doc: doc.update(arch="unet", arch_params={"width": 8, "depth": 2})
    )
    with pytest.raises(CheckpointError, match="do not fit architecture 'unet'"):
        load_checkpoint(path)


def test_unknown_architecture_in_file(tmp_path):
    path = save_checkpoint(tmp_path / "m.safetensors", build_model("prescribed"), {})
    _rewrite_metadata(path, lambda doc: doc.update(arch="transformer9"))
    with pytest.raises(CheckpointError, match="unknown architecture"):
        load_checkpoint(path)


def test_save_is_atomic_when_the_write_fails(tmp_path, monkeypatch):
    path = save_checkpoint(
        tmp_path / "model_v1.safetensors", build_model("prescribed"), {"threshold": 0.3}
    )
    before = path.read_bytes()

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("core.io.os.fsync", disk_full)
    with pytest.raises(Exception, match="No space left"):
        save_checkpoint(path, build_model("prescribed"), {})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model_v1.safetensors"]
    assert load_checkpoint(path).threshold == 0.3
