"""Large-batch options: learning-rate scaling and warm-up, LAMB and LARC steps against their formulas."""

from __future__ import annotations

import pytest
import torch

from inference.ic.optim import (LargeBatchConfig, Lamb, Larc, make_optimizer, scaled_learning_rate,
                                warmup_factor)


@pytest.mark.parametrize("rule, expected", [("none", 1e-3), ("linear", 64e-3), ("sqrt", 8e-3)])
def test_learning_rate_scales_with_the_batch(rule, expected):
    config = LargeBatchConfig(lr_scaling=rule, reference_batch_size=64)
    assert scaled_learning_rate(1e-3, 4096, config) == pytest.approx(expected)


def test_warmup_ramps_linearly_then_holds():
    assert [warmup_factor(step, 4) for step in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert warmup_factor(0, 0) == 1.0


@pytest.mark.parametrize("field, value", [("optimizer", "sgd"), ("lr_scaling", "cube"),
                                          ("reference_batch_size", 0), ("warmup_steps", -1),
                                          ("momentum", 1.0)])
def test_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match="LargeBatchConfig"):
        LargeBatchConfig(**{field: value})


def one_step(optimizer_class, weight, grad, **options):
    param = torch.nn.Parameter(weight.clone())
    optimizer = optimizer_class([param], **options)
    param.grad = grad.clone()
    optimizer.step()
    return param.detach(), optimizer


def test_lamb_first_step_is_the_trust_ratio_times_adams_direction():
    weight, grad = torch.tensor([3.0, -4.0]), torch.tensor([0.5, 0.25])
    new, _ = one_step(Lamb, weight, grad, lr=0.1, eps=1e-6, weight_decay=0.01)
    update = grad / (grad.abs() + 1e-6) + 0.01 * weight  # bias-corrected moments are g and g^2
    expected = weight - 0.1 * (weight.norm() / update.norm()) * update
    torch.testing.assert_close(new, expected)


def test_larc_clips_the_local_rate_at_the_global_rate_and_keeps_momentum():
    weight, grad = torch.tensor([3.0, -4.0]), torch.tensor([0.6, 0.8])  # norms 5 and 1
    new, optimizer = one_step(Larc, weight, grad, lr=1.0, momentum=0.5, trust_coefficient=0.02)
    torch.testing.assert_close(new, weight - 0.1 * grad)  # local rate 0.02 * 5 / 1 < lr
    clipped, _ = one_step(Larc, weight, grad, lr=0.05, trust_coefficient=0.02)
    torch.testing.assert_close(clipped, weight - 0.05 * grad)
    param = optimizer.param_groups[0]["params"][0]
    param.grad = grad.clone()
    before = param.detach().clone()
    optimizer.step()
    local = 0.02 * before.norm() / grad.norm()
    torch.testing.assert_close(param.detach(), before - (0.5 * 0.1 * grad + local * grad))


@pytest.mark.parametrize("optimizer_class", [Lamb, Larc])
def test_zero_weights_take_the_plain_rate(optimizer_class):
    new, _ = one_step(optimizer_class, torch.zeros(3), torch.ones(3), lr=0.1)
    assert torch.all(new < 0) and torch.all(torch.isfinite(new))


@pytest.mark.parametrize("name", ["adam", "lamb", "larc"])
def test_parameter_group_grows_and_state_reloads(name):
    first, later = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(3))
    optimizer = make_optimizer([first], 0.01, LargeBatchConfig(optimizer=name))
    for param in (first, later):
        param.grad = torch.full_like(param, 0.5)
    optimizer.step()
    optimizer.param_groups[0]["params"].append(later)  # as when a new address appears
    optimizer.step()
    assert not torch.equal(later.detach(), torch.ones(3))
    copy = make_optimizer([torch.nn.Parameter(first.detach().clone()), torch.nn.Parameter(later.detach().clone())],
                          0.01, LargeBatchConfig(optimizer=name))
    copy.load_state_dict(optimizer.state_dict())
    assert len(copy.state) == 2
    assert all(torch.isfinite(p.detach()).all() for p in (first, later))
