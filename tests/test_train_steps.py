"""One training step on a hand-built batch: which images each loss and D see (``hr_usm`` and the GAN loss)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.optim import Adam
from torch.optim.lr_scheduler import MultiStepLR

from esrgan.losses import ContentLoss, GeneratorLossWeights, PerceptualLoss
from esrgan.models import RRDBNet, UNetDiscriminatorSN, VGGFeatureExtractor
from esrgan.training import TrainingError
from esrgan.training.distributed import DistInfo
from esrgan.training.runtime import Runtime, TrainBatch
from esrgan.training.stage import GanParts, Losses, Stage
from esrgan.training.steps import train_step

CPU = Runtime(
    device=torch.device("cpu"), dist=DistInfo(), amp_dtype=None, memory_format=torch.contiguous_format
)


class RecordingContent(ContentLoss):
    def __init__(self) -> None:
        super().__init__(criterion="l1")
        self.targets: list[torch.Tensor] = []

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        self.targets.append(hr)
        return super().forward(sr, hr)


class RecordingPerceptual(PerceptualLoss):
    def __init__(self) -> None:
        ext = VGGFeatureExtractor(arch="vgg11", layers=("conv1_1",), use_input_norm=False)
        super().__init__(extractor=ext, layer_weights={"conv1_1": 1.0})
        self.targets: list[torch.Tensor] = []

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        self.targets.append(hr)
        return super().forward(sr, hr)


class RecordingD(nn.Module):
    """A tiny U-Net D that keeps every image it is shown."""

    def __init__(self) -> None:
        super().__init__()
        self.d = UNetDiscriminatorSN(num_in_ch=3, num_feat=4)
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x.detach().clone())
        return self.d(x)


def _stage(*, gan: bool) -> Stage:
    g = RRDBNet(num_feat=4, num_block=1, num_grow_ch=2, scale=4)
    opt_g = Adam(g.parameters(), lr=1e-4)
    parts = None
    if gan:
        d = RecordingD()
        opt_d = Adam(d.parameters(), lr=1e-4)
        parts = GanParts(
            d=d, opt=opt_d, sched=MultiStepLR(opt_d, [10]), scaler=torch.amp.GradScaler("cpu", enabled=False)
        )
    return Stage(
        name="gan" if gan else "pretrain", total=1, g=g, g_train=g, opt_g=opt_g,
        sched_g=MultiStepLR(opt_g, [10]), scaler_g=torch.amp.GradScaler("cpu", enabled=False), ema=None,
        gan=parts,
    )  # fmt: skip


def _losses(kind: str = "ragan") -> Losses:
    return Losses(
        content=RecordingContent(), perceptual=RecordingPerceptual(), gan_weights=GeneratorLossWeights(),
        gan_loss=kind,
    )  # fmt: skip


def _batch_with_usm() -> dict[str, torch.Tensor]:
    hr = torch.rand(2, 3, 16, 16)
    return {"lr": torch.rand(2, 3, 4, 4), "hr": hr, "hr_usm": (hr * 1.2 - 0.1).clamp(0, 1)}


def test_loader_batches_keep_hr_usm_and_check_its_shape() -> None:
    raw = _batch_with_usm()
    batch = CPU.batch(raw)
    assert batch.hr_usm is not None and torch.equal(batch.hr_usm, raw["hr_usm"])
    assert torch.equal(batch.target, raw["hr_usm"]) and torch.equal(batch.hr, raw["hr"])
    plain = CPU.batch({"lr": raw["lr"], "hr": raw["hr"]})
    assert plain.hr_usm is None and torch.equal(plain.target, raw["hr"])
    with pytest.raises(TrainingError, match=r"hr_usm has shape \(2, 3, 8, 8\) but hr has \(2, 3, 16, 16\)"):
        CPU.batch({**raw, "hr_usm": torch.rand(2, 3, 8, 8)})


def test_pretrain_step_pulls_sr_towards_hr_usm_when_the_batch_has_it() -> None:
    raw = _batch_with_usm()
    losses = _losses()
    result = train_step(_stage(gan=False), CPU.batch(raw), losses=losses, rt=CPU)
    assert not result.skipped
    assert isinstance(losses.content, RecordingContent)
    assert [torch.equal(t, raw["hr_usm"]) for t in losses.content.targets] == [True]


@pytest.mark.parametrize(("kind", "real_views"), [("ragan", 2), ("vanilla", 1)])
def test_gan_step_uses_hr_usm_for_content_and_perceptual_but_shows_d_the_plain_hr(
    kind: str, real_views: int
) -> None:
    raw = _batch_with_usm()
    s, losses = _stage(gan=True), _losses(kind)
    result = train_step(
        s, TrainBatch(lr=raw["lr"], hr=raw["hr"], hr_usm=raw["hr_usm"]), losses=losses, rt=CPU
    )
    assert not result.skipped
    assert {"content", "perceptual", "g_adversarial", "g_total", "d_loss", "d_real", "d_fake"} <= set(
        result.logs
    )
    assert isinstance(losses.content, RecordingContent) and isinstance(losses.perceptual, RecordingPerceptual)
    for targets in (losses.content.targets, losses.perceptual.targets):
        assert [torch.equal(t, raw["hr_usm"]) for t in targets] == [True]
    assert s.gan is not None and isinstance(s.gan.d, RecordingD)
    seen = s.gan.d.inputs
    # ragan: G's step compares with D's view of the real batch, then D's step; vanilla G needs no real view.
    assert len(seen) == 2 + real_views
    assert sum(torch.equal(x, raw["hr"]) for x in seen) == real_views
    assert not any(torch.equal(x, raw["hr_usm"]) for x in seen)


def test_the_gan_loss_choice_changes_the_adversarial_term() -> None:
    raw = _batch_with_usm()
    logs = {}
    for kind in ("ragan", "vanilla"):
        torch.manual_seed(0)
        logs[kind] = train_step(_stage(gan=True), CPU.batch(raw), losses=_losses(kind), rt=CPU).logs
    assert logs["ragan"]["content"] == logs["vanilla"]["content"]  # same G, same batch
    assert logs["ragan"]["g_adversarial"] != logs["vanilla"]["g_adversarial"]
