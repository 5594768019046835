import torch

from fmnist.core.settings import Augment
from fmnist.data import splits as data
from fmnist.train import augment


def labels(n=1000, seed=0):
    return torch.randint(0, 10, (n,), generator=torch.Generator().manual_seed(seed))


def test_split_is_stratified_disjoint_complete_and_exact():
    y = labels()
    picked, rest = data.stratified_indices(y, 200, seed=0)
    assert len(picked) == 200 and len(rest) == 800
    assert set(picked.tolist()).isdisjoint(rest.tolist())
    assert sorted(picked.tolist() + rest.tolist()) == list(range(1000))
    share = torch.bincount(y[picked], minlength=10) / torch.bincount(y, minlength=10)
    assert (share - 0.2).abs().max() < 0.02


def test_split_is_deterministic_per_seed():
    y = labels()
    a = data.stratified_indices(y, 100, seed=7)[0]
    assert torch.equal(a, data.stratified_indices(y, 100, seed=7)[0])
    assert not torch.equal(a, data.stratified_indices(y, 100, seed=8)[0])


def test_split_quotas_add_up_when_shares_are_fractional():
    y = torch.tensor([0] * 3 + [1] * 3 + [2] * 3)
    picked, _ = data.stratified_indices(y, 4, seed=0)
    assert len(picked) == 4
    assert sorted(torch.bincount(y[picked], minlength=3).tolist()) == [1, 1, 2]


def test_batches_cover_every_index_once():
    batches = augment.batch_indices(10, 4, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sorted(torch.cat(batches).tolist()) == list(range(10))


def shifts_within(image: torch.Tensor, original: torch.Tensor, pad: int) -> list[tuple[int, int]]:
    """Every (dy, dx) for which `image` is `original` zero-padded by `pad` and cropped at that offset."""
    padded = torch.nn.functional.pad(original, (pad, pad, pad, pad))
    return [
        (dy - pad, dx - pad)
        for dy in range(2 * pad + 1)
        for dx in range(2 * pad + 1)
        if torch.equal(image, padded[..., dy : dy + 28, dx : dx + 28])
    ]


def test_random_crop_shifts_within_padding():
    x = (torch.arange(28 * 28, dtype=torch.float) + 1).reshape(1, 1, 28, 28).repeat(64, 1, 1, 1)
    u = torch.rand(2, 64, generator=torch.Generator().manual_seed(0))
    out = augment.random_crop(x, 2, u[0], u[1])
    assert out.shape == x.shape
    # Each crop is the original shifted by at most 2 pixels each way (values are unique, so one shift fits).
    shifts = [shifts_within(image, x[0], 2) for image in out]
    assert all(len(fits) == 1 for fits in shifts)
    # ...and the shifts vary: an identity "crop" would give (0, 0) every time.
    assert len({fits[0] for fits in shifts}) >= 15
    assert sum(fits[0] == (0, 0) for fits in shifts) < 16


def test_augment_is_seeded_and_keeps_shape():
    x = torch.rand(16, 1, 28, 28)
    settings = Augment(crop=2, flip=True, erase=0.5)
    draws = [
        augment.epoch_randoms(1, 16, settings, torch.Generator().manual_seed(3), torch.device("cpu")) for _ in range(2)
    ]
    a, b = (augment.augment(x, settings, randoms[0], mean=0.3) for randoms in draws)
    assert a.shape == x.shape and torch.equal(a, b)
    assert not torch.equal(a, x)


def test_alternating_flip_shows_every_image_both_ways_in_two_epochs():
    flips = augment.alternating_flips(1000, seed=3, device=torch.device("cpu"))
    assert 400 < flips.sum() < 600 and torch.equal(flips, augment.alternating_flips(1000, 3, torch.device("cpu")))
    x = torch.rand(1000, 1, 28, 28)
    settings = Augment(crop=0, flip="alternate", erase=0.0)
    odd, even = (
        augment.augment(x, settings, torch.empty(0, 1000), mean=0.3, flips=flips ^ second) for second in (False, True)
    )
    flipped_once = (odd == x.flip(3)).flatten(1).all(1) ^ (even == x.flip(3)).flatten(1).all(1)
    assert flipped_once.all() and augment.random_draws(settings) == 0


def test_an_epochs_randoms_are_one_draw_with_a_row_per_use():
    settings = Augment(crop=2, flip=True, erase=0.5)
    assert augment.random_draws(settings) == 8 and augment.random_draws(Augment()) == 0
    assert augment.random_draws(Augment(contrast=0.1)) == 2
    randoms = augment.epoch_randoms(3, 16, settings, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert randoms.shape == (3, 8, 16)
    assert torch.equal(randoms.flatten(), torch.rand(3 * 8 * 16, generator=torch.Generator().manual_seed(0)))
    # A short last batch uses the first columns of its rows.
    x = torch.rand(5, 1, 28, 28)
    assert torch.equal(
        augment.augment(x, settings, randoms[2], mean=0.3), augment.augment(x, settings, randoms[2][:, :5], mean=0.3)
    )


def test_color_jitter_maps_each_image_affinely_within_its_ranges():
    x = torch.rand(400, 1, 28, 28, dtype=torch.float64)
    u_shift, u_scale = torch.rand(2, 400, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = augment.color_jitter(x, 0.1, 0.25, u_shift, u_scale, mean=0.3)
    # out = scale * x + offset per image: recover both by least squares and check their ranges.
    xc, oc = x.flatten(1) - x.flatten(1).mean(1, keepdim=True), out.flatten(1) - out.flatten(1).mean(1, keepdim=True)
    scale = (xc * oc).sum(1) / (xc * xc).sum(1)
    shift = (out.flatten(1).mean(1) - 0.3) / scale - (x.flatten(1).mean(1) - 0.3)
    assert scale.min() >= 0.75 and scale.max() <= 1.25 and scale.std() > 0.1
    assert shift.abs().max() <= 0.1 + 1e-9 and shift.std() > 0.03
    # The middle of both ranges leaves the image as it was.
    middle = torch.full((400,), 0.5, dtype=torch.float64)
    assert torch.allclose(augment.color_jitter(x, 0.1, 0.25, middle, middle, mean=0.3), x)


def test_erase_zeroes_a_rectangle_only_where_applied():
    x = torch.ones(200, 1, 28, 28)
    out = augment.random_erase(x, 0.5, *torch.rand(5, 200, generator=torch.Generator().manual_seed(0)))
    erased = (out == 0).flatten(1).sum(1)
    assert 0.3 < (erased > 0).float().mean() < 0.7
    assert erased.max() <= 0.33 * 28 * 28 + 28
