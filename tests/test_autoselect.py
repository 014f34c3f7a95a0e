"""The measured `auto` path (`esrgan.inference.autoselect`) on any CPU: forced candidate lists, a
failing candidate is never chosen however fast, the decision is cached and a damaged entry measured
again, and the cache key follows the CPU's flags, the thread count and the library versions. Timing
uses a fake clock the fake runners advance, so no assertion depends on how busy the machine is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from esrgan.device import CpuInfo
from esrgan.inference import Upscaler, autoselect
from esrgan.inference.autoselect import CANDIDATES, Candidate, candidates_for, select_path, torch_runner
from esrgan.inference.selection import cache_path, selection_key
from esrgan.models import RRDBNet

CPU = CpuInfo(model="Test CPU", flags=frozenset({"avx2", "avx512f"}), cores=2)


def _tiny(seed: int = 0) -> RRDBNet:
    torch.manual_seed(seed)
    model = RRDBNet(num_feat=8, num_block=1, num_grow_ch=4)
    return model.eval()


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.calls: dict[str, int] = {}

    def candidate(self, name: str, *, cost: float, noise: float = 0.0, broken: bool = False) -> Candidate:
        """A candidate that runs the model exactly (plus `noise`) and costs `cost` fake seconds a run."""

        def make(model: torch.nn.Module, cache_dir: Path | None, progress: bool) -> autoselect.Runner:
            if broken:
                raise RuntimeError("this runtime is not installed\nsecond line")
            exact = torch_runner(model, torch.float32)

            def run(x: torch.Tensor) -> torch.Tensor:
                self.now += cost
                self.calls[name] = self.calls.get(name, 0) + 1
                y = exact(x)
                return (y + noise * torch.randn_like(y)).clamp_(0, 1) if noise else y

            return run

        return Candidate(name=name, runtime="torch", precision="fp32", make=make)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    c = _Clock()
    monkeypatch.setattr(autoselect.time, "perf_counter", lambda: c.now)
    return c


def test_candidates_follow_the_cpu_the_request_and_the_measured_int8_drop():
    def names(precision: str = "auto", runtime: str = "auto", **facts: bool) -> list[str]:
        given = dict(native_bf16=True, int8_allowed=True, have_onnxruntime=True, have_openvino=True) | facts
        return [c.name for c in candidates_for(precision=precision, runtime=runtime, **given)]

    assert names(native_bf16=False, int8_allowed=False) == ["torch-fp32", "onnxruntime-fp32", "openvino-fp32"]
    assert names() == list(CANDIDATES)
    no_bf16 = names(native_bf16=False)
    assert "openvino-int8" in no_bf16 and "openvino-int8-bf16" not in no_bf16
    assert {CANDIDATES[n].precision for n in names(precision="fp32")} == {"fp32"}
    assert names(runtime="torch") == ["torch-fp32", "torch-bf16"]
    assert names(have_onnxruntime=False, have_openvino=False) == ["torch-fp32", "torch-bf16"]


def test_a_failing_candidate_is_never_chosen_however_fast(clock: _Clock, tmp_path: Path):
    model = _tiny()
    forced = [
        clock.candidate("exact-slow", cost=3.0),
        clock.candidate("noisy-fast", cost=0.1, noise=0.05),
        clock.candidate("missing", cost=0.0, broken=True),
    ]
    sel = select_path(model, candidates=forced, cache_dir=tmp_path, cpu=CPU, threads=1)
    verdicts = {v.name: v for v in sel.verdicts}
    assert sel.choice == "exact-slow"
    assert verdicts["exact-slow"].passed and verdicts["exact-slow"].db == float("inf")
    assert not verdicts["noisy-fast"].passed and "dB from eager fp32" in verdicts["noisy-fast"].reason
    assert verdicts["noisy-fast"].seconds is None  # failing candidates are not timed
    assert verdicts["missing"].reason == "cannot run: this runtime is not installed"
    report = "\n".join(sel.report(cpu=CPU))
    assert "choice:     exact-slow (measured in" in report and "fail: cannot run" in report


def test_the_fastest_passing_candidate_wins(clock: _Clock, tmp_path: Path):
    forced = [clock.candidate("slow", cost=2.0), clock.candidate("fast", cost=0.5)]
    sel = select_path(_tiny(), candidates=forced, cache_dir=tmp_path, cpu=CPU, threads=1)
    assert sel.choice == "fast"
    assert {v.name: v.seconds for v in sel.verdicts} == {"slow": 2.0, "fast": 0.5}


def test_with_nothing_passing_the_choice_is_eager_fp32(clock: _Clock, tmp_path: Path):
    forced = [clock.candidate("noisy", cost=0.1, noise=0.05)]
    sel = select_path(_tiny(), candidates=forced, cache_dir=tmp_path, cpu=CPU, threads=1)
    assert sel.choice == autoselect.FALLBACK


def test_the_decision_is_cached_and_a_damaged_entry_is_measured_again(clock: _Clock, tmp_path: Path):
    model = _tiny()
    forced = [clock.candidate("slow", cost=2.0), clock.candidate("fast", cost=0.5)]
    first = select_path(model, candidates=forced, cache_dir=tmp_path, cpu=CPU, threads=1)
    runs = dict(clock.calls)
    again = select_path(model, candidates=forced, cache_dir=tmp_path, cpu=CPU, threads=1)
    assert again.from_cache and again.choice == first.choice and clock.calls == runs
    (entry,) = tmp_path.glob("select-*.json")

    def damage(edit) -> None:  # type: ignore[no-untyped-def]
        data = json.loads(entry.read_text())
        edit(data)
        entry.write_text(json.dumps(data))

    damages = [
        lambda: entry.write_text('{"payload": {"choice": "fa'),  # cut short
        lambda: damage(lambda d: d["payload"].update(choice="slow")),  # edited, checksum no longer fits
        lambda: damage(lambda d: d.update(sha256="0" * 64)),
    ]
    for make_damage in damages:
        make_damage()
        before = dict(clock.calls)
        redone = select_path(model, candidates=forced, cache_dir=tmp_path, cpu=CPU, threads=1)
        assert not redone.from_cache and redone.choice == "fast"
        assert clock.calls["fast"] > before["fast"]


def test_a_cached_choice_that_did_not_pass_is_not_trusted(clock: _Clock, tmp_path: Path):
    from esrgan.utils import write_checked_json

    model = _tiny()
    forced = [clock.candidate("exact", cost=2.0), clock.candidate("noisy", cost=0.1, noise=0.05)]
    select_path(model, candidates=forced, cache_dir=tmp_path, cpu=CPU, threads=1)
    (entry,) = tmp_path.glob("select-*.json")
    data = json.loads(entry.read_text())
    data["payload"]["choice"] = "noisy"  # with a checksum that fits: a well-formed but wrong decision
    write_checked_json(entry, data["payload"])
    assert select_path(model, candidates=forced, cache_dir=tmp_path, cpu=CPU, threads=1).choice == "exact"


def test_the_cache_key_follows_weights_flags_threads_versions_and_candidates(tmp_path: Path):
    model = _tiny()
    base = dict(candidates=["torch-fp32"], policy="p", cpu=CPU, threads=2, versions={"torch": "2.0"})
    key = selection_key(model, **base)  # type: ignore[arg-type]
    amx = CpuInfo(model=CPU.model, flags=CPU.flags | {"amx_bf16"}, cores=2)
    changed = [
        selection_key(_tiny(seed=1), **base),  # type: ignore[arg-type]
        selection_key(model, **(base | {"cpu": amx})),  # type: ignore[arg-type]
        selection_key(model, **(base | {"threads": 1})),  # type: ignore[arg-type]
        selection_key(model, **(base | {"versions": {"torch": "2.1"}})),  # type: ignore[arg-type]
        selection_key(model, **(base | {"candidates": ["torch-fp32", "torch-bf16"]})),  # type: ignore[arg-type]
        selection_key(model, **(base | {"policy": "q"})),  # type: ignore[arg-type]
    ]
    paths = {cache_path(k, tmp_path) for k in changed}
    assert len(paths) == len(changed) and cache_path(key, tmp_path) not in paths
    assert selection_key(model, **base) == key  # type: ignore[arg-type]


def test_small_networks_and_other_devices_are_settled_by_rule():
    tiny = _tiny()
    cpu = torch.device("cpu")
    assert not autoselect.applies("auto", "auto", model=tiny, device=cpu)  # too small to be worth it
    big = RRDBNet(num_feat=32, num_block=2, num_grow_ch=16)
    assert autoselect.applies("auto", "auto", model=big, device=cpu)
    assert autoselect.applies("auto", "torch", model=big, device=cpu)
    assert autoselect.applies("fp32", "auto", model=big, device=cpu)
    assert not autoselect.applies("fp32", "torch", model=big, device=cpu)
    assert not autoselect.applies("bf16", "auto", model=big, device=cpu)
    assert not autoselect.applies("auto", "auto", model=big, device=torch.device("cuda"))
    up = Upscaler(tiny, precision="auto", runtime="auto", tile=0)
    assert (up.precision, up.runtime, up.prepared) == ("fp32", "torch", True)


def test_the_upscaler_runs_the_measured_choice(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setattr(autoselect, "MIN_PARAMETERS", 0)
    monkeypatch.setattr(autoselect, "candidates_for", lambda **_: [CANDIDATES["torch-fp32"]])
    model = _tiny()
    up = Upscaler(model, precision="auto", runtime="auto", tile=0, cache_dir=tmp_path)
    assert (up.precision, up.runtime, up.prepared) == ("auto", "auto", False)
    x = torch.rand(1, 3, 12, 12)
    y = up.upscale(x)
    assert up.selection is not None and up.selection.choice == "torch-fp32"
    assert (up.path, up.prepared) == ("torch fp32", True)
    with torch.no_grad():
        assert torch.allclose(y, _tiny()(x).clamp(0, 1), atol=1e-5)


def test_info_runtime_json_is_strict_json_with_identical_outputs_as_inf(
    clock: _Clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from typer.testing import CliRunner

    from esrgan.cli import app
    from esrgan.weights import save_generator

    model = _tiny()
    forced = [clock.candidate("exact", cost=1.0), clock.candidate("noisy", cost=0.1, noise=0.05)]
    sel = select_path(model, candidates=forced, cache_dir=tmp_path, cpu=CPU, threads=1)
    assert sel.choice == "exact"

    def strict(text: str) -> dict:
        def refuse(constant: str) -> None:
            raise AssertionError(f"not JSON: {constant}")

        return json.loads(text, parse_constant=refuse)

    report = strict(sel.to_json(cpu=CPU))
    verdicts = {v["name"]: v for v in report["verdicts"]}
    assert verdicts["exact"]["db"] == "inf" and verdicts["exact"]["passed"]
    assert verdicts["noisy"]["db"] < 45 and not verdicts["noisy"]["passed"]
    assert report["choice"] == "exact" and report["cpu"]["class"] == "AVX-512"

    # Through the CLI, with the measurement replaced by the one above (the real one is tested elsewhere).
    save_generator(model, tmp_path / "tiny.safetensors")
    monkeypatch.setattr(autoselect, "select_path", lambda *a, **k: sel)
    res = CliRunner().invoke(app, ["info", str(tmp_path / "tiny.safetensors"), "--runtime", "--json"])
    assert res.exit_code == 0, res.output
    assert strict(res.output)["choice"] == "exact"


def test_the_check_runs_each_crop_also_as_a_soft_lr_of_the_same_size():
    pairs, _ = autoselect._check_images(_tiny())
    assert len(pairs) == 2 * autoselect.CHECK_CROPS
    for (lr, hr), (soft, soft_hr) in zip(pairs[::2], pairs[1::2], strict=True):
        assert soft.shape == lr.shape and torch.equal(hr, soft_hr)
        assert torch.equal((soft * 255).round() / 255, soft)  # 8-bit, like a real input

        def detail(x: torch.Tensor) -> float:
            return float((x[..., 1:, :] - x[..., :-1, :]).abs().mean())

        assert detail(soft) < 0.6 * detail(lr)


def test_a_candidate_that_moves_only_the_soft_crops_is_never_chosen(clock: _Clock, tmp_path: Path):
    soft_inputs = [lr for lr, _ in autoselect._check_images(_tiny())[0][1::2]]
    base = clock.candidate("fast-but-moves-texture", cost=0.1)

    def make(model: torch.nn.Module, cache_dir: Path | None, progress: bool) -> autoselect.Runner:
        run = base.make(model, cache_dir, progress)  # type: ignore[misc]

        def moved(x: torch.Tensor) -> torch.Tensor:
            y = run(x)
            if any(x.shape == s.shape and torch.equal(x, s) for s in soft_inputs):
                y = (y + 0.05 * torch.randn_like(y)).clamp_(0, 1)
            return y

        return moved

    forced = [
        clock.candidate("slow", cost=1.0),
        Candidate(name="moves", runtime="torch", precision="bf16", make=make),
    ]
    sel = select_path(_tiny(), candidates=forced, cache_dir=tmp_path, cpu=CPU, threads=1)
    verdict = {v.name: v for v in sel.verdicts}["moves"]
    assert sel.choice == "slow" and not verdict.passed and verdict.db is not None and verdict.db < 45


@pytest.mark.parametrize("native_bf16", [True, False])
def test_without_native_bf16_auto_keeps_eagers_image(
    clock: _Clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, native_bf16: bool
):
    # 45 dB leaves room for bf16; where the CPU has none, what `auto` runs must stay within fp32's 50 dB.
    monkeypatch.setattr(autoselect, "cpu_has_native_bf16", lambda: native_bf16)
    forced = [clock.candidate("exact", cost=1.0), clock.candidate("close", cost=0.1, noise=0.006)]
    sel = select_path(_tiny(), candidates=forced, cache_dir=tmp_path, cpu=CPU, threads=1)
    close = {v.name: v for v in sel.verdicts}["close"]
    assert close.db is not None and 45 < close.db < 50
    assert sel.min_db == (autoselect.AUTO_MIN_DB if native_bf16 else autoselect.FP32_MIN_DB)
    assert sel.choice == ("close" if native_bf16 else "exact") and close.passed == native_bf16
