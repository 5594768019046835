"""Stage configure: validate params.yaml and write the settings every later stage reads.

    configs/data.json              how prepare splits the data
    configs/<model>/train.json     the model's recipe, globals merged in: train@<model> reads this alone
    configs/<model>/evaluate.json  what only evaluation reads (test-time views)

Each stage depends on its own file, so DVC reruns only the stages whose settings changed: a
global that a model overrides, or a param only evaluation reads, retrains nothing. No torch here,
so the stage takes a fraction of a second. Without DVC, run it before the stages after it.
"""

from dataclasses import asdict

from fmnist.core import cli, files, paths
from fmnist.params import parse


def main() -> None:
    params = parse.load()
    with files.atomic_dir(paths.CONFIGS) as staging:
        files.write_json(staging / paths.DATA_CONFIG.name, asdict(params.data))
        for name, model in params.models.items():
            files.write_json(staging / name / paths.train_config(name).name, asdict(model.recipe))
            files.write_json(staging / name / paths.evaluate_config(name).name, asdict(model.evaluation))
    print(f"configure: {', '.join(params.models)} in {paths.CONFIGS}/")
    for line in params.reach_lines():  # what a global retrains, said before any training starts
        print(f"configure: {line}")


if __name__ == "__main__":
    cli.run(main)
