"""One optimisation step of each stage, on one mini-batch already on the device.

Stage 1 updates G with the content loss. The GAN stage first updates G with D frozen (perceptual +
lambda * adversarial (RaGAN or vanilla) + eta * content; gradients reach G through D's input only), then
D on the same batch with G's output detached. The content and perceptual losses compare SR with the
batch's ``target`` (the sharpened ``hr_usm`` when the data provides it), D's real images are always ``hr``.
A step whose loss is not finite on any process is skipped on all of them: nothing is applied, and the
loop counts the streak.

Under DDP, G is wrapped (``stage.g_train``); D is used in two phases and called twice per backward, which
DDP's reducer does not model, so D's gradients and BatchNorm statistics are averaged explicitly, and the
RaGAN means ``E[C(x)]`` are taken over the global batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from esrgan.losses import GanLoss, gan_d_loss, gan_g_loss, generator_total_loss, r1_penalty
from esrgan.training import distributed as ddp
from esrgan.training.runtime import Runtime, TrainBatch
from esrgan.training.stage import GanParts, Losses, Stage


@dataclass(frozen=True)
class StepResult:
    """Losses of an applied step, or the names of the non-finite losses that made it a skip."""

    logs: dict[str, float] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def train_step(s: Stage, batch: TrainBatch, *, losses: Losses, rt: Runtime) -> StepResult:
    """The stage's step: ``pretrain_step``, or ``gan_step`` when the stage has a discriminator."""
    if s.gan is None:
        return pretrain_step(s, batch, losses=losses, rt=rt)
    return gan_step(s, s.gan, batch, losses=losses, rt=rt)


def pretrain_step(s: Stage, batch: TrainBatch, *, losses: Losses, rt: Runtime) -> StepResult:
    """Stage 1: G on the content loss alone."""
    with rt.autocast():
        sr = s.g_train(batch.lr)
    l_content = losses.content(sr, batch.target)
    bad = _nonfinite({"content": l_content}, rt)
    s.opt_g.zero_grad(set_to_none=True)
    if bad:
        return StepResult(skipped=bad)
    _update_g(s, l_content)
    return StepResult(logs={"content": l_content.item()})


def gan_step(s: Stage, gan: GanParts, batch: TrainBatch, *, losses: Losses, rt: Runtime) -> StepResult:
    """Stage 2: G with D frozen, then D on the same batch with G's output detached (BasicSR's order)."""
    hr, kind = batch.hr, losses.gan_loss
    # 1) G with D frozen: gradients reach G through D's input only.
    gan.d.requires_grad_(False)
    with rt.autocast():
        sr = s.g_train(batch.lr)
        fake = gan.d(sr)
        real = gan.d(hr).detach() if kind == "ragan" else None  # vanilla G loss never looks at real images
    terms = {
        "content": losses.content(sr, batch.target),
        "perceptual": losses.perceptual(sr, batch.target),
        "g_adversarial": gan_g_loss(
            kind, real, fake, real_pool=_pool(real, kind, rt), fake_pool=_pool(fake, kind, rt)
        ),
    }
    terms["g_total"] = generator_total_loss(
        perceptual=terms["perceptual"], adversarial=terms["g_adversarial"], content=terms["content"],
        weights=losses.gan_weights,
    )  # fmt: skip
    s.opt_g.zero_grad(set_to_none=True)
    bad = _nonfinite(terms, rt)
    if bad:
        gan.d.requires_grad_(True)
        return StepResult(skipped=bad)
    _update_g(s, terms["g_total"])

    # 2) D on the same batch, G's output detached.
    gan.d.requires_grad_(True)
    r1 = losses.r1_weight > 0
    real_in = hr.detach().requires_grad_(True) if r1 else hr
    with rt.autocast():
        real_d = gan.d(real_in)
        fake_d = gan.d(sr.detach())
    l_d = gan_d_loss(
        kind, real_d, fake_d, real_pool=_pool(real_d, kind, rt), fake_pool=_pool(fake_d, kind, rt)
    )
    d_terms = {"d_loss": l_d}
    scale = float(gan.scaler.get_scale()) if gan.scaler.is_enabled() else 1.0
    if r1:
        d_terms["d_r1"] = r1_penalty(real_d, real_in, scale=scale)
    gan.opt.zero_grad(set_to_none=True)
    bad = _nonfinite(d_terms, rt)
    if bad:
        if "d_r1" in bad and gan.scaler.is_enabled():
            # The penalty's gradient is taken at the loss scale: an overflow there is the scale's fault,
            # so it backs off as GradScaler does for an overflowing backward.
            gan.scaler.scale(l_d)  # creates the scale tensor on a first step; update() needs it
            gan.scaler.update(scale * gan.scaler.get_backoff_factor())
        return StepResult(skipped=bad)
    l_d_total = l_d + 0.5 * losses.r1_weight * d_terms["d_r1"] if r1 else l_d
    gan.scaler.scale(l_d_total).backward()
    ddp.average_gradients(gan.d, rt.dist)
    gan.scaler.step(gan.opt)
    gan.scaler.update()
    ddp.average_buffers(gan.d, rt.dist)

    logs = {k: v.item() for k, v in terms.items()}
    logs.update({k: v.item() for k, v in d_terms.items()})
    logs.update(d_real=real_d.float().mean().item(), d_fake=fake_d.float().mean().item())
    return StepResult(logs=logs)


def _pool(logits: torch.Tensor | None, kind: GanLoss, rt: Runtime) -> torch.Tensor | None:
    """The global batch's logits, whose mean RaGAN compares with; other losses need none."""
    return ddp.gather_batch(logits, rt.dist) if logits is not None and kind == "ragan" else None


def _update_g(s: Stage, loss: torch.Tensor) -> None:
    """Backward through G's (scaled) loss, step its optimiser and fold the new weights into the EMA."""
    s.scaler_g.scale(loss).backward()
    s.scaler_g.step(s.opt_g)
    s.scaler_g.update()
    if s.ema is not None:
        s.ema.update(s.g)


def _nonfinite(terms: dict[str, torch.Tensor], rt: Runtime) -> list[str]:
    """Names of the non-finite losses; every process gets a non-empty list if any process has one."""
    bad = [k for k, v in terms.items() if not bool(torch.isfinite(v.detach()).all())]
    if ddp.any_flag(bool(bad), rt.dist, rt.device) and not bad:
        bad = ["(another process)"]
    return bad
