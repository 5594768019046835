"""Stage prepare: IDX files into uint8 tensor splits (train / val / test) and their statistics."""

from fmnist.core import cli, files, paths, settings
from fmnist.data import idx
from fmnist.data import splits as data


def split(params: settings.Data) -> tuple[dict[str, data.Split], dict]:
    """The raw IDX files as train / val / test splits, and the statistics of each."""
    train_images = idx.read(paths.RAW / idx.TRAIN_IMAGES.name)
    train_labels = idx.read(paths.RAW / idx.TRAIN_LABELS.name).long()
    test = data.Split(
        idx.read(paths.RAW / idx.TEST_IMAGES.name).unsqueeze(1), idx.read(paths.RAW / idx.TEST_LABELS.name).long()
    )
    data.check_pairs(train_images, train_labels, test)
    data.check_size("val_size", params.val_size, len(train_labels) - 1)

    val_index, train_index = data.stratified_indices(train_labels, params.val_size, params.seed)
    full = data.Split(train_images.unsqueeze(1), train_labels)
    splits = {"train": full.take(train_index), "val": full.take(val_index), "test": test}

    pixels = splits["train"].images.double() / 255
    stats = {
        "mean": round(pixels.mean().item(), 6),
        "std": round(pixels.std().item(), 6),
        "class_counts": {name: data.class_counts(part.labels) for name, part in splits.items()},
    }
    return splits, stats


def main() -> None:
    splits, stats = split(settings.Data.read(paths.DATA_CONFIG))
    with files.atomic_dir(paths.PREPARED) as staging:
        for name, part in splits.items():
            files.save_torch(staging / f"{name}.pt", {"images": part.images.contiguous(), "labels": part.labels})
        files.write_json(staging / paths.STATS.name, stats)
    sizes = ", ".join(f"{name} {len(part)}" for name, part in splits.items())
    print(f"prepare: {sizes} images in {paths.PREPARED}/")


if __name__ == "__main__":
    cli.run(main)
