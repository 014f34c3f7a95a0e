"""`esrgan convert / info / interpolate / models` through the real typer app."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterator

import pytest
import torch
from safetensors import safe_open
from typer.testing import CliRunner

from _weights_fixtures import sample_input, tiny_model, torch_threads, write_ncnn
from esrgan.cli import app
from esrgan.weights import load_generator, load_weights, save_generator, save_pth
from esrgan.weights.zoo import REGISTRY, cached_path

runner = CliRunner()


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with torch_threads(1):
        yield


def _same_outputs(a: pathlib.Path, b: pathlib.Path) -> bool:
    ga, gb = load_generator(a), load_generator(b)
    x = sample_input(ga)
    with torch.no_grad():
        return torch.equal(ga(x), gb(x))


def test_convert_between_all_formats(tmp_path: pathlib.Path) -> None:
    model = tiny_model(num_block=2, scale=2)
    param, _ = write_ncnn(model, tmp_path / "tiny", fp16=False)

    res = runner.invoke(app, ["convert", str(param), str(tmp_path / "ours.safetensors")])
    assert res.exit_code == 0, res.stderr
    assert "(ncnn)" in res.stdout
    with safe_open(str(tmp_path / "ours.safetensors"), framework="pt") as fh:
        meta = fh.metadata()
    assert json.loads(meta["esrgan.arch"])["scale"] == 2
    assert meta["esrgan.source_layout"] == "ncnn"

    for layout in ("old", "basicsr", "basicsr-params"):
        out = tmp_path / f"{layout}.pth"
        res = runner.invoke(
            app, ["convert", str(tmp_path / "ours.safetensors"), str(out), "--layout", layout]
        )
        assert res.exit_code == 0, res.stderr
        assert load_weights(out).layout == ("esrgan-old" if layout == "old" else "basicsr")
        assert _same_outputs(out, param)


def test_convert_a_registered_name(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESRGAN_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "anime.pth"
    res = runner.invoke(app, ["convert", "realesrgan-x4plus-anime", str(out), "--layout", "basicsr", "-q"])
    assert res.exit_code == 0, res.stderr
    assert res.stdout == ""
    loaded = load_weights(out)
    assert loaded.config == REGISTRY["realesrgan-x4plus-anime"].architecture
    assert (tmp_path / "cache" / "models" / "realesrgan-x4plus-anime.safetensors").is_file()


def test_convert_errors_are_one_line_and_leave_no_output(tmp_path: pathlib.Path) -> None:
    save_generator(tiny_model(), tmp_path / "g.safetensors")
    g, missing = str(tmp_path / "g.safetensors"), str(tmp_path / "missing.pth")
    cases = [
        (
            ["convert", missing, str(tmp_path / "o.safetensors")],
            "missing.pth: file not found",
        ),
        (
            ["convert", g, str(tmp_path / "o.onnx")],
            "o.onnx: output must end in",
        ),
        (
            ["convert", g, str(tmp_path / "o.pth"), "--layout", "caffe"],
            "unknown --layout 'caffe'",
        ),
    ]
    for args, message in cases:
        res = runner.invoke(app, args)
        assert res.exit_code != 0
        assert res.stderr.startswith("error: ") and message in res.stderr
        assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.safetensors"]


def test_info_reports_architecture_parameters_and_layout(tmp_path: pathlib.Path) -> None:
    model = tiny_model(num_block=3, scale=8)
    path = tmp_path / "g.pth"
    save_pth(model.state_dict(), model.config, path, layout="old")
    res = runner.invoke(app, ["info", str(path)])
    assert res.exit_code == 0, res.stderr
    assert "esrgan-old" in res.stdout and "x8" in res.stdout and "3 blocks" in res.stdout
    n_params = sum(p.numel() for p in model.parameters())
    assert f"{n_params:,}" in res.stdout

    res = runner.invoke(app, ["info", "--json", str(path)])
    report = json.loads(res.stdout)
    assert report["parameters"] == n_params and report["scale"] == 8
    assert report["architecture"] == model.config.to_dict()

    res = runner.invoke(app, ["info", "not-a-model"])
    assert res.exit_code != 0 and "not a registered model" in res.stderr


def test_interpolate(tmp_path: pathlib.Path) -> None:
    psnr, gan = tiny_model(), tiny_model()
    with torch.no_grad():
        for p in gan.parameters():
            p.mul_(-1.0)
    save_generator(psnr, tmp_path / "psnr.safetensors")
    torch.save({"params_ema": gan.state_dict()}, tmp_path / "gan.pth")
    out = tmp_path / "interp.safetensors"
    args = ["interpolate", "--psnr", str(tmp_path / "psnr.safetensors"), "--gan", str(tmp_path / "gan.pth")]
    res = runner.invoke(app, [*args, "--alpha", "0.8", str(out)])
    assert res.exit_code == 0, res.stderr
    mixed = load_weights(out)
    for key, value in psnr.state_dict().items():
        assert torch.allclose(mixed.state_dict[key], 0.2 * value + 0.8 * gan.state_dict()[key], atol=1e-6)
    assert mixed.metadata["esrgan.interpolation.alpha"] == "0.8"
    assert mixed.metadata["esrgan.interpolation.gan"].endswith("gan.pth")
    assert mixed.metadata["esrgan.interpolation.psnr"].endswith("psnr.safetensors")

    res = runner.invoke(app, [*args, "--alpha", "1.5", str(tmp_path / "bad.safetensors")])
    assert res.exit_code != 0 and "--alpha must be in [0, 1]" in res.stderr
    save_generator(tiny_model(num_block=2), tmp_path / "deeper.safetensors")
    psnr_file, deeper = str(tmp_path / "psnr.safetensors"), str(tmp_path / "deeper.safetensors")
    res = runner.invoke(
        app, ["interpolate", "--psnr", psnr_file, "--gan", deeper, str(tmp_path / "bad.safetensors")]
    )
    assert res.exit_code != 0 and "architectures differ (num_block 1 vs 2)" in res.stderr
    res = runner.invoke(app, [*args, str(tmp_path / "bad.pth")])
    assert res.exit_code != 0 and "must be a .safetensors file" in res.stderr
    assert not (tmp_path / "bad.safetensors").exists() and not (tmp_path / "bad.pth").exists()


def test_models_lists_names_and_local_availability(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ESRGAN_CACHE", str(tmp_path))
    cached = cached_path(REGISTRY["esrgan-x4"], tmp_path / "models")
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"placeholder")
    res = runner.invoke(app, ["models"])
    assert res.exit_code == 0, res.stderr
    rows = {line.split()[0]: line for line in res.stdout.splitlines()}
    assert set(REGISTRY) <= set(rows)
    assert "installed" in rows["realesrgan-x4plus"] and "(default)" in rows["realesrgan-x4plus"]
    assert "cached" in rows["esrgan-x4"]
    assert "download" in rows["esrgan-psnr-x4"]
    assert "23 blocks" in rows["realsr-df2k-x4"] and "6 blocks" in rows["realesrgan-x4plus-anime"]
    assert "ESRGAN_SRx4_DF2KOST_official-ff704c30.pth" in rows["esrgan-x4-df2kost"]
