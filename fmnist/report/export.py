"""A trained model as one file that needs torch alone: uint8 images in, logits out.

torch.export's program (`.pt2`), not TorchScript: torch.jit is deprecated in this torch. The program
holds the model's normalisation (its first layer) and test-time views, so its logits are evaluate's.
"""

import torch
from torch import nn

from fmnist.model.inference import to_float, tta_logits

BATCH = torch.export.Dim("batch", min=1, max=65536)


class Classifier(nn.Module):
    """images: uint8, N x 1 x 28 x 28, light garments on black, as Fashion-MNIST stores them."""

    def __init__(self, model: nn.Module, views: int):
        super().__init__()
        self.model, self.views = model.eval(), views

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return tta_logits(self.model, to_float(images), self.views)


def program(model: nn.Module, views: int) -> torch.export.ExportedProgram:
    model.requires_grad_(False)  # so the program's outputs carry no autograd graph
    example = torch.zeros(2, 1, 28, 28, dtype=torch.uint8)
    exported = torch.export.export(Classifier(model, views), (example,), dynamic_shapes={"images": {0: BATCH}})
    # Each node's stack trace names this checkout's path and its source line numbers: without them
    # the file depends on the weights alone, so a clone elsewhere, or an edit that moves lines,
    # rebuilds it byte for byte.
    for node in exported.graph.nodes:
        node.meta.pop("stack_trace", None)
    return exported
