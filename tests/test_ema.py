import pytest
import torch
from torch import nn

from esrgan.training.ema import ModelEMA


def _constant_model(value: float) -> nn.Module:
    m = nn.Linear(4, 4)
    with torch.no_grad():
        for p in m.parameters():
            p.fill_(value)
    return m


def test_ema_forgets_the_initialisation_within_a_few_hundred_steps() -> None:
    ema = ModelEMA(_constant_model(0.0), decay=0.999)
    trained = _constant_model(1.0)
    for _ in range(300):
        ema.update(trained)
    # A plain 0.999 EMA would still hold 1 - 0.999**300 = 0.26 of the way; the warm-up is nearly there.
    w = ema.model.weight
    assert float(w.min()) > 0.95
    assert ema.updates == 300


def test_ema_decay_warms_up_to_the_configured_value() -> None:
    ema = ModelEMA(_constant_model(0.0), decay=0.999)
    assert ema.current_decay() == pytest.approx(0.1)
    ema.updates = 100_000
    assert ema.current_decay() == 0.999


def test_ema_load_restores_the_update_count() -> None:
    a = ModelEMA(_constant_model(0.0), decay=0.99)
    for _ in range(7):
        a.update(_constant_model(1.0))
    b = ModelEMA(_constant_model(5.0), decay=0.99)
    b.load_state_dict(a.state_dict(), updates=a.updates)
    a.update(_constant_model(2.0))
    b.update(_constant_model(2.0))
    assert torch.equal(a.model.weight, b.model.weight)


def test_ema_rejects_bad_decay() -> None:
    with pytest.raises(ValueError, match="decay"):
        ModelEMA(_constant_model(0.0), decay=1.0)
