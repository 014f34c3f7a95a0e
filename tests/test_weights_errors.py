"""Broken, hostile and wrong weights files: one line naming the file, no output, nothing executed.

Each bad file goes through the three doors a user has: `esrgan upscale --model FILE`, `esrgan info FILE`
and `esrgan.weights.load_generator(FILE)`.
"""

from __future__ import annotations

import functools
import io
import pathlib
import pickle
import re
import tempfile
import zipfile
from collections.abc import Callable

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from safetensors.torch import save_file
from typer.testing import CliRunner

from _weights_fixtures import tiny_model
from esrgan.cli import app
from esrgan.models import VGGStyleDiscriminator
from esrgan.weights import WeightsError, load_generator, save_generator, save_pth, save_state_dict

Maker = Callable[[pathlib.Path], pathlib.Path]


def _good_safetensors(tmp: pathlib.Path) -> pathlib.Path:
    path = tmp / "good.safetensors"
    save_generator(tiny_model(scale=2), path)
    return path


def _good_pth(tmp: pathlib.Path) -> pathlib.Path:
    model = tiny_model(scale=2)
    path = tmp / "good.pth"
    save_pth(model.state_dict(), model.config, path)
    return path


def _empty(name: str) -> Maker:
    def make(tmp: pathlib.Path) -> pathlib.Path:
        (tmp / name).write_bytes(b"")
        return tmp / name

    return make


def _truncated(source: Maker, name: str, keep: float) -> Maker:
    def make(tmp: pathlib.Path) -> pathlib.Path:
        data = source(tmp).read_bytes()
        (tmp / name).write_bytes(data[: int(len(data) * keep)])
        return tmp / name

    return make


def _png_named(name: str) -> Maker:
    def make(tmp: pathlib.Path) -> pathlib.Path:
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp / name, format="PNG")
        return tmp / name

    return make


def _random_bytes(name: str) -> Maker:
    def make(tmp: pathlib.Path) -> pathlib.Path:
        (tmp / name).write_bytes(np.random.default_rng(3).integers(0, 256, 4096, np.uint8).tobytes())
        return tmp / name

    return make


def _discriminator(tmp: pathlib.Path) -> pathlib.Path:
    torch.save({"params": VGGStyleDiscriminator(channels=(8, 8), hidden=(4,)).state_dict()}, tmp / "netD.pth")
    return tmp / "netD.pth"


def _other_network(tmp: pathlib.Path) -> pathlib.Path:
    # A SwinIR-like net: keys of an architecture this project does not have.
    sd = {
        "conv_first.weight": torch.randn(8, 3, 3, 3),
        "layers.0.residual_group.blocks.0.attn.qkv.weight": torch.randn(24, 8),
    }
    save_file(sd, tmp / "swinir.safetensors")
    return tmp / "swinir.safetensors"


def _compact_without_slopes(tmp: pathlib.Path) -> pathlib.Path:
    # Compact (SRVGGNetCompact) keys whose activation cannot be told from the weights.
    sd = {f"body.{i}.weight": torch.randn(8, 8, 3, 3) for i in range(0, 6, 2)}
    save_file(sd, tmp / "compact.safetensors")
    return tmp / "compact.safetensors"


def _nan_filled(tmp: pathlib.Path) -> pathlib.Path:
    model = tiny_model(scale=2)
    sd = {k: torch.full_like(v, float("nan")) for k, v in model.state_dict().items()}
    save_state_dict(sd, model.config, tmp / "nan.safetensors")
    return tmp / "nan.safetensors"


def _one_inf(tmp: pathlib.Path) -> pathlib.Path:
    sd = dict(tiny_model(scale=2).state_dict())
    sd["conv_last.weight"] = sd["conv_last.weight"].clone()
    sd["conv_last.weight"][0, 0, 1, 1] = float("inf")
    torch.save({"params_ema": sd}, tmp / "inf.pth")
    return tmp / "inf.pth"


def _integer_tensors(tmp: pathlib.Path) -> pathlib.Path:
    sd = {k: (v * 100).to(torch.int32) for k, v in tiny_model(scale=2).state_dict().items()}
    torch.save(sd, tmp / "ints.pth")
    return tmp / "ints.pth"


def _shape_mismatch(tmp: pathlib.Path) -> pathlib.Path:
    sd = dict(tiny_model(scale=2).state_dict())
    sd["body.0.rdb2.conv3.weight"] = torch.randn(4, 12, 3, 3)
    torch.save(sd, tmp / "shapes.pth")
    return tmp / "shapes.pth"


def _metadata_lies(tmp: pathlib.Path) -> pathlib.Path:
    # Tensors of an x2 model under metadata describing 2 blocks: the metadata must agree with the shapes.
    model = tiny_model(scale=2)
    path = tmp / "lies.safetensors"
    save_generator(model, path)
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        meta = dict(fh.metadata())
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 (not a dict)
    meta["esrgan.arch"] = meta["esrgan.arch"].replace('"num_block": 1', '"num_block": 2')
    save_file(tensors, path, metadata=meta)
    return path


def _folder(tmp: pathlib.Path) -> pathlib.Path:
    (tmp / "weights.pth").mkdir()
    return tmp / "weights.pth"


BAD_FILES: dict[str, tuple[Maker, str]] = {
    "empty .pth": (_empty("empty.pth"), r"empty\.pth: the file is empty"),
    "empty .safetensors": (_empty("empty.safetensors"), r"empty\.safetensors: the file is empty"),
    "truncated .pth": (
        _truncated(_good_pth, "cut.pth", 0.5),
        r"cut\.pth: not a readable PyTorch checkpoint \(truncated or damaged",
    ),
    "truncated .safetensors": (
        _truncated(_good_safetensors, "cut.safetensors", 0.9),
        r"cut\.safetensors: not a readable safetensors file",
    ),
    "random bytes .pth": (_random_bytes("noise.pth"), r"noise\.pth: not a readable PyTorch checkpoint"),
    "random bytes .safetensors": (
        _random_bytes("noise.safetensors"),
        r"noise\.safetensors: not a readable safetensors file",
    ),
    "an image named .pth": (_png_named("photo.pth"), r"photo\.pth: this is a PNG image, not a weights file"),
    "wrong suffix": (_png_named("model.onnx"), r"model\.onnx: unsupported weights format '\.onnx'"),
    "a discriminator": (_discriminator, r"netD\.pth: not an RRDBNet generator"),
    "another architecture": (_other_network, r"swinir\.safetensors: not an RRDBNet generator"),
    "compact without activation": (
        _compact_without_slopes,
        r"compact\.safetensors: .*activation .* cannot be",
    ),
    "NaN-filled": (_nan_filled, r"nan\.safetensors: .* NaN or infinite value\(s\).*refusing to use them"),
    "one inf": (_one_inf, r"inf\.pth: conv_last\.weight holds 1 NaN or infinite value\(s\) of 216"),
    "integer tensors": (_integer_tensors, r"ints\.pth: conv_first\.weight holds int32 values"),
    "shape mismatch": (
        _shape_mismatch,
        r"shapes\.pth: weights do not fit the architecture \(body\.0\.rdb2\.conv3\.weight has shape",
    ),
    "metadata disagrees with shapes": (_metadata_lies, r"lies\.safetensors: weights do not fit"),
    "a folder": (_folder, r"weights\.pth: is a folder, not a weights file"),
}


def _one_error_line(output: str, pattern: str) -> None:
    lines = [line for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, output
    assert re.search(pattern, errors[0]), errors[0]
    assert "Traceback" not in output


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_weights_give_one_line_everywhere(tmp_path: pathlib.Path, case: str) -> None:
    make, pattern = BAD_FILES[case]
    bad = make(tmp_path)
    with pytest.raises(WeightsError, match=pattern) as info:
        load_generator(bad)
    assert "\n" not in str(info.value)

    runner = CliRunner()
    res = runner.invoke(app, ["info", str(bad)])
    assert res.exit_code == 1, res.output
    _one_error_line(res.output, pattern)

    image = tmp_path / "in.png"
    Image.fromarray(np.full((6, 6, 3), 128, np.uint8)).save(image)
    res = runner.invoke(app, ["upscale", str(image), "--model", str(bad), "--device", "cpu", "-q"])
    assert res.exit_code == 2, res.output
    _one_error_line(res.output, pattern)
    assert not (tmp_path / "in_sr.png").exists()


class _TouchWhenUnpickled:
    """Unpickling this calls `Path.touch(marker)`: the file appears only if code from the pickle ran."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (pathlib.Path.touch, (self.marker,))


def _zip_checkpoint_with_payload(path: pathlib.Path, marker: pathlib.Path) -> None:
    torch.save({"params_ema": tiny_model(scale=2).state_dict(), "x": _TouchWhenUnpickled(marker)}, path)


def _legacy_pickle_with_payload(path: pathlib.Path, marker: pathlib.Path) -> None:
    # The pre-1.6 (non-zip) torch format is a bare pickle stream: torch.load reads it too.
    with open(path, "wb") as fh:
        pickle.dump({"params": _TouchWhenUnpickled(marker)}, fh, protocol=2)


def _payload_in_data_pkl(path: pathlib.Path, marker: pathlib.Path) -> None:
    # A valid checkpoint whose archive has its data.pkl replaced by a pickle that runs code.
    good = io.BytesIO()
    torch.save({"w": torch.zeros(2)}, good)
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(path, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename.endswith("/data.pkl"):
                data = pickle.dumps(_TouchWhenUnpickled(marker), protocol=2)
            dst.writestr(item, data)


@pytest.mark.parametrize(
    "write", [_zip_checkpoint_with_payload, _legacy_pickle_with_payload, _payload_in_data_pkl]
)
@pytest.mark.parametrize("suffix", [".pth", ".ckpt"])
def test_code_in_a_weights_file_is_never_run(
    tmp_path: pathlib.Path, write: Callable[[pathlib.Path, pathlib.Path], None], suffix: str
) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / f"evil{suffix}"
    write(evil, marker)
    with pytest.raises(WeightsError, match=r"evil\.\w+: refusing to unpickle objects other than tensors"):
        load_generator(evil)
    runner = CliRunner()
    res = runner.invoke(app, ["info", str(evil)])
    assert res.exit_code == 1 and "refusing to unpickle" in res.output, res.output
    image = tmp_path / "in.png"
    Image.fromarray(np.zeros((6, 6, 3), np.uint8)).save(image)
    res = runner.invoke(app, ["upscale", str(image), "--model", str(evil), "-q"])
    assert res.exit_code == 2 and "refusing to unpickle" in res.output, res.output
    res = runner.invoke(app, ["convert", str(evil), str(tmp_path / "out.safetensors"), "-q"])
    assert res.exit_code == 1 and not (tmp_path / "out.safetensors").exists()
    assert not marker.exists(), "code from the weights file was executed"


def test_a_good_file_still_loads_and_upscales(tmp_path: pathlib.Path) -> None:
    # The checks above must not refuse healthy weights (fp16 included).
    model = tiny_model(scale=2)
    half = {k: v.half() for k, v in model.state_dict().items()}
    save_state_dict(half, model.config, tmp_path / "half.safetensors")
    loaded = load_generator(tmp_path / "half.safetensors")
    assert loaded.scale == 2
    image = tmp_path / "in.png"
    Image.fromarray(np.full((6, 6, 3), 100, np.uint8)).save(image)
    res = CliRunner().invoke(
        app, ["upscale", str(image), "--model", str(tmp_path / "half.safetensors"), "--device", "cpu", "-q"]
    )
    assert res.exit_code == 0, res.output
    assert Image.open(tmp_path / "in_sr.png").size == (12, 12)


@functools.cache
def _good_bytes(suffix: str) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        make = _good_safetensors if suffix == ".safetensors" else _good_pth
        return make(pathlib.Path(tmp)).read_bytes()


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    suffix=st.sampled_from([".safetensors", ".pth"]),
    edits=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), min_size=1, max_size=8),
    cut=st.one_of(st.none(), st.floats(0, 1)),
)
def test_mutated_weights_load_or_give_one_line(
    tmp_path: pathlib.Path,
    suffix: str,
    edits: list[tuple[float, int]],
    cut: float | None,
) -> None:
    data = bytearray(_good_bytes(suffix))
    for where, value in edits:
        data[min(len(data) - 1, int(where * len(data)))] = value
    if cut is not None:
        data = data[: int(cut * len(data))]
    path = tmp_path / f"mutated{suffix}"
    path.write_bytes(bytes(data))
    try:
        model = load_generator(path)
    except WeightsError as exc:
        assert str(exc).startswith(f"{path}: ") and "\n" not in str(exc)
    else:
        # A flipped byte inside a tensor can leave a loadable file; it must still hold finite numbers.
        assert all(bool(torch.isfinite(p).all()) for p in model.parameters())
