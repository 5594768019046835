"""A transparent cut-out is composited on white, as a shop shows it, even when the garment touches the frame."""

import torch
from PIL import Image

from fmnist.predict import images


def trousers(height: int = 120, width: int = 80) -> tuple[torch.Tensor, torch.Tensor]:
    """Dark grey trousers from the top edge to the bottom edge, two legs; transparent around them."""
    alpha = torch.zeros(height, width, dtype=torch.uint8)
    alpha[:, 20:38] = 255
    alpha[:, 44:62] = 255
    alpha[: height // 3, 20:62] = 255  # the waist joins the legs
    grey = torch.where(alpha > 0, torch.tensor(90, dtype=torch.uint8), torch.tensor(0, dtype=torch.uint8))
    return grey, alpha


def test_a_cutout_touching_two_edges_converts_as_the_same_picture_on_white(tmp_path):
    grey, alpha = trousers()
    rgba = torch.stack([grey, grey, grey, alpha], -1).numpy()
    Image.fromarray(rgba, "RGBA").save(tmp_path / "cutout.png")
    on_white = torch.where(alpha > 0, grey, torch.tensor(255, dtype=torch.uint8))
    Image.fromarray(on_white.numpy(), "L").save(tmp_path / "white.png")
    cutout, conversion = images.load(tmp_path / "cutout.png")
    white, _ = images.load(tmp_path / "white.png")
    assert conversion.inverted  # light background made black, as Fashion-MNIST's
    assert torch.equal(cutout, white)


def test_a_transparent_hole_in_an_opaque_picture_takes_the_borders_grey():
    grey = torch.full((40, 40), 30, dtype=torch.uint8)
    alpha = torch.full((40, 40), 255, dtype=torch.uint8)
    alpha[15:25, 15:25] = 0
    filled = images.fill_transparent(grey, alpha)
    assert int(filled[20, 20]) == 30
