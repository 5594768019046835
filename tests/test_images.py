"""Pictures into Fashion-MNIST's form: formats, EXIF orientation, transparency, and the conversion."""

import resource
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fmnist.predict import images


def garment(width=300, height=200, box=(40, 30, 140, 180), ground=255, ink=30) -> np.ndarray:
    """A flat `ink` rectangle (left, top, right, bottom) on a `ground` background, uint8 greyscale."""
    picture = np.full((height, width), ground, dtype=np.uint8)
    left, top, right, bottom = box
    picture[top:bottom, left:right] = ink
    return picture


def extent(image: torch.Tensor) -> tuple[int, int, int, int]:
    """First and last row, first and last column holding any light pixel."""
    rows, columns = (image > 0).any(1).nonzero().flatten(), (image > 0).any(0).nonzero().flatten()
    return rows[0].item(), rows[-1].item(), columns[0].item(), columns[-1].item()


def test_shop_photo_is_inverted_trimmed_fit_to_28_and_centred():
    seen, conversion = images.convert(torch.from_numpy(garment()))
    assert conversion.inverted and conversion.size == (300, 200) and conversion.trimmed == (100, 150)
    top, bottom, left, right = extent(seen)
    assert (top, bottom) == (0, 27)  # the longest side fills the height
    assert right - left + 1 in (19, 20)  # 100 / 150 of 28, aspect ratio kept
    assert abs(left - (27 - right)) <= 1  # centred
    assert seen[14, 14] == 255 - 30


def test_light_garment_on_black_is_not_inverted_and_grey_background_becomes_black():
    seen, conversion = images.convert(torch.from_numpy(garment(ground=20, ink=220)))
    assert not conversion.inverted and conversion.background == 20
    assert seen[0, 0] == 0 and seen[14, 14] == round((220 - 20) * 255 / (255 - 20))


def test_28x28_on_black_passes_through_bit_for_bit_but_on_white_is_converted():
    picture = torch.randint(0, 256, (28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    picture[[0, -1]] = 3
    picture[:, [0, -1]] = 3
    seen, conversion = images.convert(picture)
    assert torch.equal(seen, picture) and conversion.trimmed is None
    assert images.convert(255 - picture)[1].inverted


def test_blank_picture_is_refused():
    with pytest.raises(images.ImageError, match="blank"):
        images.convert(torch.full((50, 40), 250, dtype=torch.uint8))


@pytest.mark.parametrize(
    "suffix, options",
    [
        (".png", {}),
        (".jpg", {"quality": 90}),
        (".bmp", {}),
        (".gif", {}),
        (".webp", {"quality": 90}),
    ],
)
def test_every_format_reads_to_the_same_picture(tmp_path, suffix, options):
    Image.fromarray(garment()).convert("RGB").save(tmp_path / f"shirt{suffix}", **options)
    seen, conversion = images.load(tmp_path / f"shirt{suffix}")
    expected, _ = images.convert(torch.from_numpy(garment()))
    assert conversion.inverted and conversion.size == (300, 200)
    assert (seen.float() - expected.float()).abs().mean() < 4  # lossy formats differ a little


def test_exif_orientation_is_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: shown rotated 90 degrees clockwise
    Image.fromarray(garment()).save(tmp_path / "phone.png", exif=exif)
    seen, conversion = images.load(tmp_path / "phone.png")
    upright = np.ascontiguousarray(np.rot90(garment(), k=-1))
    assert conversion.size == (200, 300)
    assert torch.equal(seen, images.convert(torch.from_numpy(upright))[0])


def test_transparent_pixels_become_background(tmp_path):
    """A cut-out: a dark garment on transparent pixels whose hidden colour is black."""
    alpha = np.where(garment() == 30, 255, 0).astype(np.uint8)
    rgba = np.stack([np.zeros_like(alpha) + 30 * (alpha > 0)] * 3 + [alpha], axis=-1)
    Image.fromarray(rgba.astype(np.uint8), "RGBA").save(tmp_path / "cutout.png")
    seen, conversion = images.load(tmp_path / "cutout.png")
    assert conversion.inverted  # the transparent surround counts as white, as on a shop page
    assert torch.equal(seen, images.convert(torch.from_numpy(garment()))[0])


def test_gif_first_frame_is_read(tmp_path):
    first, second = garment(), garment(box=(10, 80, 290, 120))
    Image.fromarray(first).save(tmp_path / "anim.gif", save_all=True, append_images=[Image.fromarray(second)])
    seen, conversion = images.load(tmp_path / "anim.gif")
    assert conversion.trimmed == (100, 150)
    assert torch.equal(seen, images.convert(torch.from_numpy(first))[0])


def test_16_bit_greyscale_is_scaled_not_clipped(tmp_path):
    Image.fromarray(garment().astype(np.uint16) * 257).save(tmp_path / "deep.png")
    seen, conversion = images.load(tmp_path / "deep.png")
    assert conversion.inverted and torch.equal(seen, images.convert(torch.from_numpy(garment()))[0])


def test_a_mode_pillow_reads_but_cannot_convert_is_that_files_error(tmp_path):
    Image.fromarray(garment()).convert("RGB").convert("LAB").save(tmp_path / "lab.tif")
    with pytest.raises(images.ImageError, match=r"lab\.tif: cannot convert its LAB pixels to greyscale \(.*\)$"):
        images.load(tmp_path / "lab.tif")


@contextmanager
def address_space(extra: int):
    """Let the process map only `extra` more bytes: an allocation past that fails at once."""
    used = int(Path("/proc/self/status").read_text().split("VmSize:")[1].split()[0]) * 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (used + extra, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads the address space size from /proc")
def test_a_long_thin_picture_costs_memory_by_its_pixels_not_its_long_side_squared(tmp_path):
    picture = np.full((60, 30000), 255, dtype=np.uint8)
    picture[20:41, 100:29900] = 30  # a 29800 x 21 bar: its square would be 3.6 GB of floats
    Image.fromarray(picture).save(tmp_path / "belt.png")
    assert (tmp_path / "belt.png").stat().st_size < 10_000
    with address_space(500 * 2**20):
        seen, conversion = images.load(tmp_path / "belt.png")
    assert conversion.trimmed == (29800, 21)
    assert seen.nonzero()[:, 0].unique().tolist() in ([13], [14], [13, 14])  # a faint line across the middle


def test_directory_lists_its_pictures_sorted_and_refuses_one_without(tmp_path):
    for name in ("b.JPG", "a.png", "notes.txt", "c.webp"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in images.image_files(tmp_path)] == ["a.png", "b.JPG", "c.webp"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(images.ImageError, match="no images"):
        images.image_files(tmp_path / "empty")
