"""Muon for convolution filters, SGD with Nesterov momentum for everything else, in one optimizer.

Muon (Keller Jordan, 2024) replaces each filter's momentum update by the nearest semi-orthogonal
matrix, found with a few Newton-Schulz iterations; airbench94_muon reaches CIFAR-10's 94% in 8
epochs instead of 9.9 with it. One optimizer for both kinds of parameter, so one schedule and one
state dict (resume points) cover them. torch.optim.Muon takes 2-D parameters only; filters are 4-D.
"""

import torch

# The quintic iteration's coefficients, chosen (by Muon's author) to push every singular value
# towards 1 quickly, not exactly; three steps suffice for these small filters, as in airbench.
COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def orthogonalize(update: torch.Tensor, steps: int = 3) -> torch.Tensor:
    """The update's nearest semi-orthogonal matrix, roughly: U V^T of its SVD, in bf16."""
    a, b, c = COEFFICIENTS
    x = update.bfloat16()
    x = x / (x.norm() + 1e-7)  # singular values at most 1, where the iteration converges
    wide = x.size(0) <= x.size(1)
    x = x if wide else x.T
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x if wide else x.T


class Muon(torch.optim.Optimizer):
    """Groups with `orthogonal` set take Muon steps: the weight renormalised to norm sqrt(outputs),
    then the Nesterov momentum update orthogonalised. The others take SGD-Nesterov steps, with
    weight decay as L2 as torch.optim.SGD adds it."""

    def __init__(self, groups: list[dict], lr: float, momentum: float):
        super().__init__(groups, {"lr": lr, "momentum": momentum, "weight_decay": 0.0, "orthogonal": False})

    @torch.no_grad()
    def step(self, closure=None) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad.add(p, alpha=group["weight_decay"]) if group["weight_decay"] else p.grad
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(grad)
                buffer = state["momentum_buffer"].mul_(group["momentum"]).add_(grad)
                update = grad.add(buffer, alpha=group["momentum"])
                if group["orthogonal"]:
                    p.mul_(len(p) ** 0.5 / p.norm())
                    update = orthogonalize(update.reshape(len(p), -1)).view_as(p).to(p.dtype)
                p.add_(update, alpha=-group["lr"])
