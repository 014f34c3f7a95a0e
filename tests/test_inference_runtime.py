"""ONNX Runtime as the CPU fp32 runtime, and `esrgan export`: the exported network gives eager fp32's
output (any batch, height and width), is exported once per weights and reused, and the runtime choice
follows the precision policy. One tiny network is exported for the whole module (the exporter is slow)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from _weights_fixtures import psnr, textured_image
from esrgan.cli import app
from esrgan.inference import Upscaler
from esrgan.inference.export import ExportError, cached_onnx, export_openvino, weights_digest
from esrgan.inference.export_check import export_and_check, max_abs_difference
from esrgan.inference.precision import resolve_precision_and_runtime
from esrgan.inference.runtime import AUTO_ONNX_MIN_PARAMETERS, resolve_runtime
from esrgan.io import read_image
from esrgan.models import RRDBNet
from esrgan.weights import save_generator

CPU = torch.device("cpu")
BABY = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "Set5" / "x4" / "img_001_SRF_4_LR.png"


def _tiny(seed: int = 0, **kw) -> RRDBNet:
    torch.manual_seed(seed)
    model = RRDBNet(**({"num_feat": 8, "num_block": 1, "num_grow_ch": 4} | kw))
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, a=0.2)
    return model.eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[RRDBNet, Path, Path]:
    """The tiny model, its cache folder and its cached ONNX file (exported once here)."""
    cache = tmp_path_factory.mktemp("onnx-cache")
    model = _tiny()
    return model, cache, cached_onnx(model, cache_dir=cache)


def test_onnx_runtime_gives_eager_fp32_output_for_any_size_and_batch(exported):
    model, cache, _ = exported
    eager = Upscaler(model, device="cpu", precision="fp32", tile=0, runtime="torch")
    ort = Upscaler(model, device="cpu", precision="fp32", tile=0, runtime="onnxruntime", cache_dir=cache)
    assert ort.runtime == "onnxruntime" and ort.precision == "fp32"
    for n, h, w in [(1, 16, 16), (1, 37, 23), (2, 20, 31)]:
        x = textured_image(h, w, n)
        expected, got = eager.upscale(x), ort.upscale(x)
        assert got.shape == expected.shape == (n, 3, 4 * h, 4 * w)
        assert psnr(got, expected) > 80  # the bar for "the same output" is 50 dB
        assert (got - expected).abs().max() < 1e-4


def test_onnx_runtime_tiled_equals_its_untiled_output(exported):
    model, cache, _ = exported
    x = textured_image(50, 70)
    whole = Upscaler(model, device="cpu", precision="fp32", tile=0, runtime="onnxruntime", cache_dir=cache)
    tiled = Upscaler(
        model,
        device="cpu",
        precision="fp32",
        tile=32,
        tile_overlap=12,
        runtime="onnxruntime",
        cache_dir=cache,
    )
    assert tiled.num_tiles(50, 70) > 1
    assert psnr(tiled.upscale(x), whole.upscale(x)) > 60


def test_onnx_file_is_made_once_per_weights_and_reused(exported):
    model, cache, path = exported
    stamp = path.stat().st_mtime_ns
    assert cached_onnx(model, cache_dir=cache) == path and path.stat().st_mtime_ns == stamp
    assert list(cache.glob("*.onnx")) == [path]
    # The key is the tensors, not the object: a copy hashes the same, one changed weight does not.
    twin = _tiny()
    assert weights_digest(twin) == weights_digest(model)
    with torch.no_grad():
        twin.conv_last.bias[0] += 1e-3
    assert weights_digest(twin) != weights_digest(model)
    assert weights_digest(_tiny(num_feat=16)) != weights_digest(model)


def test_runtime_choice():
    tiny = _tiny()
    assert sum(p.numel() for p in tiny.parameters()) < AUTO_ONNX_MIN_PARAMETERS
    # Tiny networks never pay for an export; real-size ones get ONNX Runtime on the CPU in fp32.
    assert resolve_runtime("auto", model=tiny, device=CPU, dtype=torch.float32) == "torch"
    big = RRDBNet(num_block=4)
    assert sum(p.numel() for p in big.parameters()) >= AUTO_ONNX_MIN_PARAMETERS
    assert resolve_runtime("auto", model=big, device=CPU, dtype=torch.float32) == "onnxruntime"
    assert resolve_runtime("auto", model=big, device=CPU, dtype=torch.bfloat16) == "torch"
    assert resolve_runtime("torch", model=big, device=CPU, dtype=torch.float32) == "torch"
    # auto precision on the CPU takes the exact fp32 runtime when it can, whatever the CPU's bf16.
    assert resolve_precision_and_runtime("auto", "auto", model=big, device=CPU) == (
        torch.float32,
        "onnxruntime",
    )
    assert resolve_precision_and_runtime("fp32", "torch", model=big, device=CPU) == (torch.float32, "torch")
    with pytest.raises(ValueError, match="unknown runtime"):
        resolve_runtime("tensorrt", model=big, device=CPU, dtype=torch.float32)
    with pytest.raises(ValueError, match="fp32 on the CPU"):
        resolve_runtime("onnxruntime", model=big, device=CPU, dtype=torch.bfloat16)
    with pytest.raises(ValueError, match="runtime"):
        Upscaler(tiny, device="cpu", precision="fp32", runtime="onnx-please")


@pytest.mark.skipif(not BABY.exists(), reason="Set5 not found beside the checkout (../shared/datasets)")
def test_openvino_export_matches_pytorch_on_a_real_image(exported, tmp_path):
    pytest.importorskip("openvino")
    model, _, onnx_path = exported
    xml = export_openvino(model, tmp_path / "tiny.xml", onnx_path=onnx_path)
    assert xml.is_file() and xml.with_suffix(".bin").is_file()
    photo = read_image(BABY).pixels[None, :, :48, :40]
    assert max_abs_difference(xml, model, photo, format="openvino") < 1e-4
    assert max_abs_difference(onnx_path, model, photo, format="onnx") < 1e-4
    with pytest.raises(ExportError, match=r"\.xml"):
        export_openvino(model, tmp_path / "tiny.onnx", onnx_path=onnx_path)
    with pytest.raises(ExportError, match="unknown export format"):
        export_and_check(model, tmp_path / "x.trt", format="tensorrt", image=photo[0])


@pytest.mark.skipif(not BABY.exists(), reason="Set5 not found beside the checkout (../shared/datasets)")
def test_export_command_writes_onnx_and_prints_its_difference_from_pytorch(tmp_path):
    weights = tmp_path / "tiny.safetensors"
    save_generator(_tiny(seed=5, scale=2), weights)
    out = tmp_path / "out" / "tiny.onnx"
    result = CliRunner().invoke(app, ["export", str(weights), str(out), "--check-image", str(BABY)])
    assert result.exit_code == 0, result.output
    assert out.is_file()
    line = result.output.strip().splitlines()[-1]
    assert "max |onnx - pytorch|" in line and "80x96" in line and str(BABY) in line
    diff = float(line.split("= ")[1].split()[0])
    assert diff < 1e-4
    bad = CliRunner().invoke(app, ["export", str(weights), str(tmp_path / "m.bin"), "--format", "tflite"])
    assert bad.exit_code != 0 and "unknown export format" in bad.output
