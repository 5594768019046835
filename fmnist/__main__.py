"""Command-line entry point of the library: `python -m fmnist predict [--model NAME] ... PATH...`."""

import argparse
import json
import sys
from pathlib import Path

from fmnist.core import cli
from fmnist.core.errors import FmnistError

GRID_LIMIT = 64  # pictures drawn by --grid; more would make an unreadably large PNG


def top_k(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 10:
        raise argparse.ArgumentTypeError(f"{text!r}: must be an integer from 1 to 10")
    return int(text)


def parser() -> argparse.ArgumentParser:
    main_parser = argparse.ArgumentParser(prog="fmnist", description="Fashion-MNIST models, from the repository root.")
    commands = main_parser.add_subparsers(dest="command", required=True)
    predict = commands.add_parser(
        "predict",
        help="classify your own pictures of clothing",
        description="Classify pictures (PNG, JPEG, BMP, GIF, WebP) with a trained model. Each picture "
        "is converted the way Fashion-MNIST was made: greyscale, inverted when its "
        "background is light, trimmed, fit into 28 x 28 and centred.",
    )
    predict.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="an image file or a directory of them")
    predict.add_argument(
        "--model", help="a trained model (default: the best validation accuracy on reports/leaderboard.json)"
    )
    predict.add_argument("--top", type=top_k, default=3, metavar="K", help="classes shown per picture (default 3)")
    predict.add_argument("--json", action="store_true", help="one JSON object per file instead of the table")
    predict.add_argument("--grid", type=Path, metavar="OUT.png", help="draw the pictures as the model saw them")
    return main_parser


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)  # before importing torch, so --help is quick
    cli.run(lambda: predict_command(args))


def predict_command(args: argparse.Namespace) -> None:
    from fmnist.predict import images, predict

    classifier = predict.load(args.model)
    loaded = []  # per file, in order: (path, (image, conversion)) or (path, the error)
    for path in args.paths:
        try:
            loaded += [(file, read(file)) for file in images.image_files(path)]
        except images.ImageError as error:  # a directory without pictures
            loaded.append((path, fail(error)))
    predictions = iter(
        predict.classify(
            classifier, [(file, *result) for file, result in loaded if not isinstance(result, Exception)], args.top
        )
    )
    results = [(file, result if isinstance(result, Exception) else next(predictions)) for file, result in loaded]
    show(results, classifier.name, args)
    drawn = [result for _, result in results if not isinstance(result, Exception)]
    if args.grid and drawn:
        draw_grid(drawn, classifier.name, args.grid)
    if len(drawn) < len(results):
        sys.exit(2)


def draw_grid(predictions: list, model: str, path: Path) -> None:
    from fmnist.predict import predict

    try:
        predict.draw_grid(predictions[:GRID_LIMIT], len(predictions), model, path)
    except OSError as error:
        raise FmnistError(f"{path}: cannot write the grid ({error.strerror or error})") from None


def read(file: Path):
    """The picture as the model will see it, or the error that stopped it (already reported)."""
    from fmnist.predict import images

    try:
        return images.load(file)
    except images.ImageError as error:
        return fail(error)


def fail(error: Exception) -> Exception:
    print(f"error: {error}", file=sys.stderr, flush=True)
    return error


def show(results: list, model: str, args: argparse.Namespace) -> None:
    """A JSON object per file (in the order given), or one table of the pictures that were read."""
    from fmnist.predict import predict

    if args.json:
        for file, result in results:
            failed = isinstance(result, Exception)
            print(json.dumps({"file": str(file), "error": str(result)} if failed else predict.as_json(result, model)))
        return
    predictions = [result for _, result in results if not isinstance(result, Exception)]
    if predictions:
        from rich.console import Console

        Console().print(predict.table(predictions, model, args.top))


if __name__ == "__main__":
    main()
