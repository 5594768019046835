"""Stage configure@<model>: validate params.yaml and write one model's resolved settings.

train@<model> and evaluate@<model> read these files, and nothing else, for their settings
(fmnist.settings). So DVC reruns a stage only when a setting it reads changes: a global that the
model overrides, or a param only evaluation reads, leaves the training file byte-identical and
training is skipped. No torch here, so the stage starts in a fraction of a second. Without DVC,
run it before train and evaluate:
    python -m stages.configure            (every model)
"""

import argparse
from dataclasses import asdict

from fmnist import cli, config, files, paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", help="model names under models: in params.yaml (default: all)")
    names = parser.parse_args().models
    params = config.load()
    for name in names or params.models:
        model = config.pick(params, name)
        files.write_json(paths.train_config(name), asdict(model.training))
        files.write_json(paths.evaluate_config(name), asdict(model.evaluation))
        print(f"configure {name}: {paths.train_config(name)}, {paths.evaluate_config(name)}")


if __name__ == "__main__":
    cli.run(main)
