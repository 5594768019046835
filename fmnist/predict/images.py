"""Pictures of clothing into Fashion-MNIST's form: 28 x 28 greyscale, a light garment centred on black.

Fashion-MNIST was made from Zalando's product photos (dark garments on a light background) by
trimming the border, fitting the longest side to 28 pixels, centring, and inverting. `convert`
does the same to a user's picture, so a trained model sees what it was trained on.
"""

from dataclasses import dataclass
from pathlib import Path

import torch

from fmnist.core.errors import FmnistError

SIDE = 28
# Fashion-MNIST trimmed edges closer than 5% of the intensity range to the corner colour.
TRIM_DISTANCE = round(0.05 * 255)
EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


class ImageError(FmnistError):
    """A file that cannot be classified: missing, unreadable, not an image, or blank."""


@dataclass(frozen=True)
class Conversion:
    """What `convert` did to one picture, for the user to check."""

    size: tuple[int, int]  # width x height as read, after EXIF rotation
    inverted: bool  # the background was light, so the picture was negated
    background: int  # the border's grey level before inversion
    trimmed: tuple[int, int] | None  # width x height after trimming; None = passed through as is

    def describe(self) -> str:
        size = f"{self.size[0]}x{self.size[1]}"
        if self.trimmed is None:
            return f"as is ({size} on black)"
        inverted = "inverted" if self.inverted else "not inverted"
        return f"{inverted}; {size}, trimmed {self.trimmed[0]}x{self.trimmed[1]}"


def load(path: Path) -> tuple[torch.Tensor, Conversion]:
    """One file as the model will see it: uint8 28 x 28, and what was done to get there."""
    grey, alpha = read(path)
    try:
        return convert(fill_transparent(grey, alpha))
    except ImageError as error:
        raise ImageError(f"{path}: {error}") from None


def image_files(path: Path) -> list[Path]:
    """A directory's pictures (by extension, sorted); any other path as given."""
    if not path.is_dir():
        return [path]
    found = sorted(p for p in path.iterdir() if p.suffix.lower() in EXTENSIONS and p.is_file())
    if not found:
        raise ImageError(f"{path}: no images in this directory (looked for {', '.join(EXTENSIONS)})")
    return found


def read(path: Path) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A picture as greyscale uint8 H x W, EXIF orientation applied, plus its alpha (or None)."""
    from PIL import Image, ImageOps, UnidentifiedImageError  # Pillow comes with torchvision

    if not path.exists():
        raise ImageError(f"{path}: no such file")
    if path.is_file() and path.stat().st_size == 0:
        raise ImageError(f"{path}: empty file")
    try:
        with Image.open(path) as image:
            image.load()  # decodes the first frame of a GIF or animated WebP
            image = ImageOps.exif_transpose(image)
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image Pillow can read (PNG, JPEG, BMP, GIF or WebP)") from None
    except Image.DecompressionBombError as error:
        raise ImageError(f"{path}: too large ({error})") from None
    except OSError as error:
        if error.errno is not None:  # from the file system: permissions, a directory, ...
            raise ImageError(f"{path}: cannot read ({error.strerror})") from None
        raise ImageError(f"{path}: damaged or truncated image ({error})") from None
    except (SyntaxError, ValueError) as error:  # what Pillow raises for some broken headers
        raise ImageError(f"{path}: damaged image ({error})") from None
    try:
        return _grey(image), _alpha(image)
    except (ValueError, OSError) as error:  # a mode Pillow reads but cannot convert, e.g. a Lab TIFF's
        raise ImageError(f"{path}: cannot convert its {image.mode} pixels to greyscale ({error})") from None


def _grey(image) -> torch.Tensor:
    import numpy as np

    if image.mode.startswith("I;16"):  # 16-bit greyscale: scale, as convert("L") would clip
        return torch.from_numpy((np.asarray(image, dtype=np.float64) / 257).round().astype(np.uint8))
    return torch.from_numpy(np.asarray(image.convert("L"), dtype=np.uint8).copy())


def _alpha(image) -> torch.Tensor | None:
    import numpy as np

    if image.mode not in ("RGBA", "LA", "PA", "RGBa", "La") and "transparency" not in image.info:
        return None
    return torch.from_numpy(np.asarray(image.convert("RGBA"), dtype=np.uint8)[..., 3].copy())


def border(grey: torch.Tensor) -> torch.Tensor:
    """The outermost ring of pixels."""
    return torch.cat([grey[0], grey[-1], grey[1:-1, 0], grey[1:-1, -1]])


def fill_transparent(grey: torch.Tensor, alpha: torch.Tensor | None) -> torch.Tensor:
    """Transparent pixels become the colour they stand for: white, a shop's background, when most of
    the border is transparent (a cut-out, even one whose garment touches the frame), else the
    opaque border's grey (a picture with a transparent hole)."""
    if alpha is None:
        return grey
    opaque = border(alpha) >= 128
    cut_out = opaque.float().mean() <= 0.5
    background = 255 if cut_out else border(grey)[opaque].median().item()
    weight = alpha.float() / 255
    return (grey.float() * weight + background * (1 - weight)).round().to(torch.uint8)


def convert(grey: torch.Tensor) -> tuple[torch.Tensor, Conversion]:
    """Greyscale H x W uint8 into Fashion-MNIST's 28 x 28 form and a record of what was done."""
    height, width = grey.shape
    background = int(border(grey).median().item())
    inverted = background > 127
    if (height, width) == (SIDE, SIDE) and not inverted:
        return grey, Conversion((width, height), False, background, None)  # already Fashion-MNIST's form
    x, level = (255 - grey.float(), 255 - background) if inverted else (grey.float(), background)
    # A grey background becomes black, as Fashion-MNIST's is.
    x = trim(((x - level) * 255 / (255 - level)).clamp(0, 255))
    record = Conversion((width, height), inverted, background, (x.shape[1], x.shape[0]))
    return fit(x), record


def trim(x: torch.Tensor) -> torch.Tensor:
    """Cut the border whose pixels are all within the trim distance of the (now black) background."""
    rows = (x > TRIM_DISTANCE).any(1).nonzero().flatten()
    columns = (x > TRIM_DISTANCE).any(0).nonzero().flatten()
    if not len(rows):
        raise ImageError("blank: no pixel differs from the background colour")
    return x[rows[0] : rows[-1] + 1, columns[0] : columns[-1] + 1]


def fit(x: torch.Tensor) -> torch.Tensor:
    """Centre on a black square as wide as the longest side, resize that square to 28 x 28, sharpen.

    Centring before resizing keeps the aspect ratio exact and the centring precise to a fraction
    of an output pixel. Shrinking averages the pixels each output pixel covers (no aliasing).
    Averaging is separable, so it shrinks one axis at a time, the long one first: the square of a
    long thin picture is never made (30000 x 60 pixels would be 3.6 GB of floats).
    """
    side = max(x.shape)
    if side <= SIDE:  # enlarging: a square of at most 28 x 28
        square = _centre(_centre(x, 0, side), 1, side)
        resized = torch.nn.functional.interpolate(square[None, None], size=(SIDE, SIDE), mode="bilinear")[0, 0]
    else:
        resized = x
        for axis in sorted((0, 1), key=lambda axis: -x.shape[axis]):
            resized = _shrink(_centre(resized, axis, side), axis)
    return sharpen(resized[None, None])[0, 0].round().clamp(0, 255).to(torch.uint8)


def _centre(x: torch.Tensor, axis: int, side: int) -> torch.Tensor:
    """Pad with black on both sides of `axis` to `side` pixels, centred as the square puts it."""
    before = (side - x.shape[axis]) // 2
    after = side - x.shape[axis] - before
    return torch.nn.functional.pad(x, (before, after) if axis == 1 else (0, 0, before, after))


def _shrink(x: torch.Tensor, axis: int) -> torch.Tensor:
    """Average `axis` down to 28 pixels, each the mean of those it covers (interpolate's "area")."""
    return torch.nn.functional.adaptive_avg_pool1d(x.movedim(axis, -1)[None], SIDE)[0].movedim(-1, axis)


def sharpen(x: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """Unsharp mask with a Gaussian of standard deviation 1, as Zalando sharpened every Fashion-MNIST image.

    Resizing blurs, and a model trained on sharpened images loses accuracy on blurred ones; the
    round-trip test in tests/test_predict.py measures what this wins back.
    """
    offsets = torch.arange(-2, 3, dtype=torch.float)
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="replicate")
    blurred = torch.nn.functional.conv2d(padded, (kernel[:, None] * kernel[None, :])[None, None])
    return x + (x - blurred)
