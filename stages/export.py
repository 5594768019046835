"""Stage export@<model>: the trained model as exports/<model>.pt2, loadable with torch alone.

import torch
model = torch.export.load("exports/cnn.pt2").module()
logits = model(images)            # uint8 N x 1 x 28 x 28; normalisation and test-time views inside
"""

import argparse
import io

import torch

from fmnist.core import cli, files, paths, settings
from fmnist.model import checkpoint, export


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a model name under models: in params.yaml")
    name = parser.parse_args().model
    views = settings.Evaluation.read(paths.evaluate_config(name)).tta_views
    model, _ = checkpoint.load(paths.model(name))
    buffer = io.BytesIO()  # through memory, as files.save_torch does, so the archive never names a temporary file
    torch.export.save(export.program(model, views), buffer)
    files.write_bytes(paths.export(name), buffer.getvalue())
    print(f"export {name}: {paths.export(name)} ({views} test-time view(s) inside)")


if __name__ == "__main__":
    cli.run(main)
