"""The Muon optimizer: orthogonalised filter updates, and plain SGD-Nesterov for the other parameters."""

import torch

from fmnist.train.muon import Muon, orthogonalize


def test_orthogonalize_pushes_every_singular_value_towards_one():
    update = torch.randn(48, 8 * 9, generator=torch.Generator().manual_seed(0))
    singular = torch.linalg.svdvals(orthogonalize(update, steps=5).float())
    assert 0.5 < singular.min() and singular.max() < 1.3
    tall = orthogonalize(update.T, steps=5)
    assert tall.shape == update.T.shape


def test_the_other_groups_take_exactly_torchs_sgd_nesterov_steps():
    generator = torch.Generator().manual_seed(1)
    ours, theirs = torch.randn(10, 5, generator=generator), None
    theirs = ours.clone().requires_grad_()
    ours.requires_grad_()
    muon = Muon([{"params": [ours], "weight_decay": 0.01}], lr=0.1, momentum=0.85)
    sgd = torch.optim.SGD([theirs], lr=0.1, momentum=0.85, nesterov=True, weight_decay=0.01)
    for _ in range(3):
        grad = torch.randn(10, 5, generator=generator)
        ours.grad, theirs.grad = grad.clone(), grad.clone()
        muon.step()
        sgd.step()
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_a_filter_is_renormalised_then_moved_by_an_orthogonal_update():
    generator = torch.Generator().manual_seed(2)
    weight = (3 * torch.randn(16, 8, 3, 3, generator=generator)).requires_grad_()
    muon = Muon([{"params": [weight], "orthogonal": True}], lr=0.1, momentum=0.6)
    weight.grad = torch.randn(16, 8, 3, 3, generator=generator)
    before = weight.detach().clone()
    muon.step()
    renormalised = before * 16**0.5 / before.norm()
    step = (renormalised - weight.detach()).reshape(16, -1) / 0.1
    assert torch.allclose(step.norm(), torch.tensor(16**0.5), rtol=0.3)  # 16 singular values near 1
    assert "momentum_buffer" in muon.state_dict()["state"][0]
