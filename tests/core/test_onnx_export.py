"""Models QGIS can run (issue 15): ONNX export with the Deepness plugin's metadata, checked with
onnxruntime against torch."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from core.checkpoint import load_checkpoint  # noqa: E402
from core.errors import CheckpointError, ConfigError  # noqa: E402
from core.onnx_export import (  # noqa: E402
    DEEPNESS_KEYS,
    OnnxEngine,
    export_onnx,
    read_onnx_metadata,
)
from tests.factories import save_untrained_model  # noqa: E402


@pytest.mark.parametrize("arch", ["prescribed", "liteunet"])
def test_onnx_equals_torch_and_carries_deepness_metadata(tmp_path, arch):
    model_path = save_untrained_model(tmp_path, arch=arch, metadata={"threshold": 0.45})
    exported = export_onnx(
        model_path, tmp_path / "model.onnx", tile=256, overlap=32, resolution_cm=25
    )
    meta = read_onnx_metadata(exported.path)
    assert set(DEEPNESS_KEYS) <= set(meta)
    assert meta["model_type"] == "Segmentor" and meta["class_names"] == {"0": "roof"}
    assert meta["tile_size"] == 256 and meta["tiles_overlap"] == 12 and meta["resolution"] == 25
    assert meta["seg_thresh"] == pytest.approx(load_checkpoint(model_path).threshold)
    # the file itself, as Deepness reads it: JSON strings in the custom metadata map
    session = ort.InferenceSession(str(exported.path), providers=["CPUExecutionProvider"])
    custom = session.get_modelmeta().custom_metadata_map
    assert json.loads(custom["model_type"]) == "Segmentor"
    assert session.get_inputs()[0].shape[1:] == [3, 256, 256]

    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, (2, 256, 256, 3), dtype=np.uint8)
    loaded = load_checkpoint(model_path)
    x = torch.from_numpy(batch).permute(0, 3, 1, 2).float() / 255.0
    with torch.inference_mode():
        expected = torch.sigmoid(loaded.model.eval()(x))[:, 0].numpy()
    got = OnnxEngine(exported.path).forward(batch)
    assert got.shape == expected.shape
    assert float(np.abs(got - expected).max()) < 1e-4


def test_bad_exports_say_why(tmp_path):
    model_path = save_untrained_model(tmp_path, arch="prescribed")
    with pytest.raises(ConfigError, match="tile"):
        export_onnx(model_path, tmp_path / "m.onnx", tile=30)
    with pytest.raises(ConfigError, match="resolution"):
        export_onnx(model_path, tmp_path / "m.onnx", resolution_cm=-1)
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="junk.onnx"):
        read_onnx_metadata(tmp_path / "junk.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_a_stretch_model_exported_for_an_orthophoto_gets_its_stretch_as_standardization(
    tmp_path, capsys
):
    from PIL import Image

    from core.cli import main
    from core.input_stretch import stretch_table
    from core.predict import model_input

    model_path = save_untrained_model(
        tmp_path, arch="liteunet", metadata={"input_stretch": "percentile"}
    )
    rng = np.random.default_rng(1)
    dark = (rng.integers(0, 256, (256, 256, 3)) * 0.4 + 10).astype(np.uint8)
    Image.fromarray(dark).save(tmp_path / "dark.png")
    exported = export_onnx(
        model_path, tmp_path / "m.onnx", tile=256, overlap=32, stretch_from=tmp_path / "dark.png"
    )
    meta = exported.metadata
    assert meta["rooftop_input_stretch"] == "percentile" and meta["rooftop_stretch_from"]
    assert all(0 < m < 0.2 for m in meta["standardization_mean"])
    assert all(0 < s < 0.5 for s in meta["standardization_std"])
    # Deepness's standardization of the raw pixels = our stretch (up to rounding to 8 bits)
    loaded = load_checkpoint(model_path)
    stretched = model_input(loaded.model, dark, stretch_table(dark))
    x = torch.from_numpy(stretched[None]).permute(0, 3, 1, 2).float() / 255.0
    with torch.inference_mode():
        expected = torch.sigmoid(loaded.model.eval()(x))[:, 0].numpy()
    got = OnnxEngine(exported.path).forward(dark[None])
    assert float(np.abs(got - expected).max()) < 2e-2
    # without an orthophoto: a warning; and a model without a stretch refuses one
    code = main(["export-onnx", str(model_path), "--out", str(tmp_path / "w.onnx")])
    said = capsys.readouterr()
    assert code == 0 and "2nd-98th percentiles" in said.out + said.err
    assert "--stretch-from" in said.out + said.err
    plain = save_untrained_model(tmp_path, arch="liteunet", name="model_v2.safetensors")
    with pytest.raises(ConfigError, match="stretch-from"):
        export_onnx(plain, tmp_path / "p.onnx", stretch_from=tmp_path / "dark.png")
