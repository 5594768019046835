"""The stages as plain Python commands (as on a machine without DVC), on synthetic data."""

import errno
import hashlib
import json
import signal
import subprocess
import sys

import pytest
import torch
import yaml

from fmnist.core import curves, files, paths, settings
from fmnist.data import splits as data
from fmnist.model import checkpoint, inference
from tests import project
from tests.synthetic import idx_bytes, write_raw
from tools.project import stage_commands

TINY = {
    "epochs": 3,
    "val_size": 100,
    "batch_size": 64,
    "models": {
        "lin": {"arch": "logreg", "lr": 0.01},
        "conv": {
            "arch": "cnn",
            "channels": [4, 8],
            "lr": 0.01,
            "lookahead": True,
            "augment": {"crop": 2, "flip": "alternate", "erase": 0.2},
            "tta_views": 6,
        },
    },
}


@pytest.fixture
def repo(tmp_path):
    return project.plain_project(tmp_path / "repo", TINY)


@pytest.fixture
def stage(repo, monkeypatch, capsys):
    """A stage run in this process: for the one-line error contract, checked many times over."""
    return lambda *command: project.stage_in_process(repo, monkeypatch, capsys, *command)


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def digests(directory):
    return {p.relative_to(directory).as_posix(): digest(p) for p in sorted(directory.rglob("*")) if p.is_file()}


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.e2e
def test_pipeline_runs_without_dvc_and_reruns_identically(repo):
    for name, argv in stage_commands(repo):  # in dvc.yaml's order, as a machine without DVC runs them
        if name != "download":  # the synthetic raw files are there already
            project.run(repo, sys.executable, *argv[1:])
    first = digests(repo / paths.PREPARED)
    outputs = {p: digest(repo / p) for p in [paths.model("conv"), paths.test_metrics("conv"), paths.confusion("conv")]}
    assert digest(repo / "metrics" / "conv.json") == outputs[paths.test_metrics("conv")]  # published as is
    metrics = json.loads((repo / "metrics" / "conv.json").read_text())
    assert all(isinstance(value, (int, float)) for value in metrics.values()), metrics
    timing = json.loads((repo / "reports" / "timing" / "conv.json").read_text())
    assert all(isinstance(value, (int, float)) for value in timing.values()), timing
    details = json.loads((repo / "reports" / "details" / "conv.json").read_text())
    assert 1 <= details["best_epoch"] <= 3 and len(details) == 1 + len(data.CLASSES)
    provenance = json.loads((repo / "reports" / "provenance" / "conv.json").read_text())
    assert provenance["recipe"] and provenance["torch_version"] == torch.__version__ and provenance["device"]
    assert json.loads((repo / "metrics" / "lin.json").read_text())["test_accuracy"] > 0.5
    board = json.loads((repo / "reports" / "leaderboard.json").read_text())
    assert [row["model"] for row in board][0] == "lin" and len(board) == 2
    card = (repo / "reports" / "model_cards" / "conv.md").read_text()
    assert card.startswith("# conv") and f"Test accuracy **{metrics['test_accuracy']:.4f}**" in card
    assert json.loads((repo / "reports" / "provenance" / "conv.json").read_text())["multiply_adds"] > 0
    curves = (repo / "plots" / "curves" / "conv.csv").read_text().splitlines()
    assert curves[0] == "epoch,train_loss,train_accuracy,val_loss,val_accuracy,lr" and len(curves) == 4  # no wall time

    # Rerun: the same bytes. The conv alone (augmentation, lookahead, test-time views): the linear
    # model has no source of variation the conv lacks.
    project.stage(repo, "prepare")
    assert digests(repo / paths.PREPARED) == first
    project.stage(repo, "train", "conv")
    project.stage(repo, "evaluate", "conv")
    assert {p: digest(repo / p) for p in outputs} == outputs


@pytest.mark.e2e
def test_the_export_gives_evaluates_predictions_with_torch_alone(repo):
    # The program computes in fp32; evaluate at `precision: auto` would use bf16 on a CPU that has it.
    project.write_params(repo, TINY | {"precision": "fp32"})
    for command in (("configure",), ("prepare",), ("train", "conv"), ("evaluate", "conv")):
        project.stage(repo, *command)
    code = (
        "import sys, torch; model = torch.export.load(sys.argv[1]).module();"  # no fmnist import
        "test = torch.load(sys.argv[2], weights_only=True);"
        "torch.save(model(test['images']).detach(), sys.argv[3])"
    )
    project.run(
        repo, sys.executable, "-c", code, str(paths.export("conv")), str(paths.PREPARED / "test.pt"), "logits.pt"
    )
    logits = torch.load(repo / "logits.pt", weights_only=True)
    with open(repo / paths.confusion("conv")) as rows:
        evaluated = [line.split(",")[1].strip() for line in rows.readlines()[1:]]
    assert [data.CLASSES[i] for i in logits.argmax(1).tolist()] == evaluated  # the same answer on every image
    recipe = settings.Recipe.read(repo / paths.train_config("conv"))
    views = settings.Evaluation.read(repo / paths.evaluate_config("conv")).tta_views
    model, _ = checkpoint.load(repo / paths.model("conv"))  # its normalisation is its first layer
    runtime = inference.Runtime.create(recipe.device, recipe.precision, recipe.arch)
    test = torch.load(repo / paths.PREPARED / "test.pt", weights_only=True)["images"]
    expected = inference.predict(runtime.place(model), test, runtime, recipe.eval_batch_size, views)
    assert torch.allclose(logits, expected, atol=1e-5)  # fp32 on both sides: only summation order may differ


def test_a_bad_parameter_stops_configure_and_so_every_stage_after_it(repo, stage):
    """configure alone reads params.yaml: it refuses before writing, and the stages after it, which
    read only what it wrote, say what to run first."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["models"]["conv"]["learning_rate"] = 0.1
    project.write_params(repo, params)
    # As a user runs it, in a process of its own: the message must come without a traceback.
    assert_one_line_error(project.stage(repo, "configure", check=False), "models.conv.learning_rate: unknown key")
    assert not (repo / paths.CONFIGS).exists()
    for command, missing in (
        ("prepare", paths.DATA_CONFIG),
        ("train conv", paths.train_config("conv")),
        ("evaluate lin", paths.train_config("lin")),
    ):
        assert_one_line_error(stage(*command.split()), f"{missing}: missing (run: python -m stages.configure)")
    assert not (repo / paths.PREPARED).exists() and not (repo / "models").exists()


def test_a_refused_configure_leaves_the_settings_it_wrote_before(repo, stage):
    assert stage("configure").returncode == 0
    written = digests(repo / paths.CONFIGS)
    project.write_params(repo, TINY | {"epochs": 0})
    assert_one_line_error(stage("configure"), "params.yaml: epochs = 0: must be an integer in [1, 10000]")
    assert digests(repo / paths.CONFIGS) == written


def test_val_size_zero_trains_on_every_training_image_and_keeps_the_last_epoch(repo, stage):
    project.write_params(repo, {**TINY, "val_size": 0, "models": {"lin": TINY["models"]["lin"]}})
    for command in (["configure"], ["prepare"], ["train", "lin"], ["evaluate", "lin"], ["summarize"]):
        assert stage(*command).returncode == 0, command
    counts = json.loads((repo / paths.STATS).read_text())["class_counts"]
    assert sum(counts["val"].values()) == 0 and sum(counts["train"].values()) == 600
    assert checkpoint.load(repo / paths.model("lin"))[1]["best_epoch"] == TINY["epochs"]
    # No validation accuracy to report: left out, not NaN (which is not JSON, and no number to diff).
    headline = json.loads((repo / paths.test_metrics("lin")).read_text(), parse_constant=pytest.fail)
    assert "best_val_accuracy" not in headline and "test_accuracy" in headline
    assert "No validation split" in (repo / paths.model_card("lin")).read_text()


def test_val_size_larger_than_data_is_refused(repo, stage):
    project.write_params(repo, {**TINY, "val_size": 700})
    assert stage("configure").returncode == 0  # the data's size is prepare's to know
    assert_one_line_error(stage("prepare"), "params.yaml: val_size = 700: must not exceed")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize(
    "where, key, value, message",
    [
        ("top", "device", "cuda", 'params.yaml: device (models.lin) = "cuda": CUDA is not available here'),
        ("lin", "device", "cuda:1", 'params.yaml: device (models.lin) = "cuda:1": CUDA is not available here'),
        ("top", "precision", "fp16", 'params.yaml: precision (models.lin) = "fp16": fp16 needs CUDA'),
        ("lin", "precision", "fp16", 'params.yaml: precision (models.lin) = "fp16": fp16 needs CUDA'),
    ],
)
def test_machine_refusals_name_the_key_and_the_model(repo, stage, where, key, value, message):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    (params if where == "top" else params["models"]["lin"])[key] = value
    project.write_params(repo, params)
    assert stage("configure").returncode == 0  # the spec is valid anywhere; only this machine lacks it
    for name in ("train", "evaluate"):
        assert_one_line_error(stage(name, "lin"), message)


def test_summarize_loads_without_torch(repo):
    """It runs after every evaluation: torch's import would be most of its time."""
    result = project.run(repo, sys.executable, "-c", "import sys, stages.summarize; print('torch' in sys.modules)")
    assert result.stdout.strip() == "False"


def test_configure_starts_without_torch(repo):
    code = "import runpy, sys; runpy.run_module('stages.configure', run_name='__main__'); print('torch' in sys.modules)"
    result = project.run(repo, sys.executable, "-c", code)
    assert result.stdout.strip().splitlines()[-1] == "False"
    assert json.loads((repo / paths.evaluate_config("conv")).read_text())["tta_views"] == 6
    assert "tta_views" not in json.loads((repo / paths.train_config("conv")).read_text())
    assert json.loads((repo / paths.DATA_CONFIG).read_text()) == {"seed": 0, "val_size": TINY["val_size"]}


def test_the_stages_after_configure_run_without_pydantic_or_ruamel(repo, stage):
    """As on the GPU image, which lacks both: configure's JSON is all that train and evaluate read."""
    assert stage("configure").returncode == 0
    blocked = "import sys; sys.modules.update(pydantic=None, ruamel=None); import runpy; sys.argv = sys.argv[1:]; "
    run = blocked + "runpy.run_module(sys.argv[0], run_name='__main__')"
    for command in (["stages.prepare"], ["stages.train", "lin"], ["stages.evaluate", "lin"]):
        project.run(repo, sys.executable, "-c", run, *command)
    assert json.loads((repo / "metrics" / "lin.json").read_text())["test_accuracy"] > 0


def set_train_subset(repo, size: int, model: str | None) -> None:
    """`train_subset: size` under `model`, or as the global when model is None."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    (params["models"][model] if model else params)["train_subset"] = size
    project.write_params(repo, params)


def configure_and_prepare(stage) -> None:
    assert stage("configure").returncode == 0 and stage("prepare").returncode == 0


def test_train_subset_larger_than_data_is_refused(repo, stage):
    configure_and_prepare(stage)
    set_train_subset(repo, 10_000, "lin")
    assert stage("configure").returncode == 0
    assert_one_line_error(stage("train", "lin"), "train_subset (models.lin) = 10000: must not exceed the 500 images")
    project.write_params(repo, TINY)
    set_train_subset(repo, 10_000, None)  # the global
    assert stage("configure").returncode == 0
    assert_one_line_error(stage("train", "lin"), "params.yaml: train_subset (models.lin) = 10000: must not exceed")


def test_train_before_prepare_is_one_line(repo, stage):
    assert stage("configure").returncode == 0
    assert_one_line_error(stage("train", "lin"), f"{paths.PREPARED}/", "missing; run the prepare stage first")


def test_summarize_before_evaluate_is_one_line(repo, stage):
    configure_and_prepare(stage)
    assert_one_line_error(stage("summarize"), "results/", "missing")


def test_a_batch_of_one_image_is_refused_before_training(repo, stage):
    configure_and_prepare(stage)
    set_train_subset(repo, 1, "conv")
    assert stage("configure").returncode == 0
    assert_one_line_error(stage("train", "conv"), "train_subset (models.conv) = 1: leaves 1 image(s) per batch")


def test_a_full_disk_while_saving_the_model_is_one_line(repo, stage, monkeypatch):
    configure_and_prepare(stage)
    real_replace = files.os.replace

    def full_for_models(source, target):
        if str(target).startswith(str(paths.model("lin"))):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_replace(source, target)

    monkeypatch.setattr(files.os, "replace", full_for_models)
    result = stage("train", "lin")  # after the epochs' progress lines
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1].startswith(
        f"error: {paths.model('lin')}: cannot write (No space left on device)"
    )
    assert not (repo / paths.model("lin")).exists() and not list((repo / paths.model("lin")).parent.glob(".lin.pt.*"))


SAVE_TORCH = files.save_torch


def stop_after_saves(monkeypatch, saves: int) -> None:
    """SIGTERM this process as files.save_torch returns for the `saves`-th time: a `kill` that lands
    at that moment exactly (raise_signal runs the handler before it returns), on the stage's own path
    from the signal to its exit. Each call starts a fresh count."""
    saved = []

    def save_then_stop(path, obj):
        SAVE_TORCH(path, obj)
        saved.append(path)
        if len(saved) == saves:
            signal.raise_signal(signal.SIGTERM)

    monkeypatch.setattr(files, "save_torch", save_then_stop)


def assert_interrupted(result) -> None:
    assert result.returncode == 130, result.stderr
    assert result.stderr.splitlines()[-1] == "interrupted: outputs left complete or absent"


def test_interrupted_prepare_leaves_splits_complete_or_absent(repo, stage, monkeypatch):
    assert stage("configure").returncode == 0
    prepared = repo / paths.PREPARED
    stop_after_saves(monkeypatch, 2)  # train.pt and val.pt staged, test.pt not yet
    assert_interrupted(stage("prepare"))
    assert not prepared.exists()
    monkeypatch.setattr(files, "save_torch", SAVE_TORCH)
    assert stage("prepare").returncode == 0
    whole = digests(prepared)
    stop_after_saves(monkeypatch, 2)
    assert_interrupted(stage("prepare"))
    assert digests(prepared) == whole  # the previous splits, untouched
    assert not [p.name for p in (repo / "data").iterdir() if p.name.startswith(".")]


def test_interrupted_training_leaves_no_output_and_resumes_to_identical_result(repo, stage, monkeypatch):
    configure_and_prepare(stage)
    assert stage("train", "conv", "--fresh").returncode == 0
    curves_whole = (repo / paths.curves("conv")).read_text()
    uninterrupted = digest(repo / paths.model("conv"))
    (repo / paths.model("conv")).unlink()

    stop_after_saves(monkeypatch, 2)  # the resume points of epochs 1 and 2 of 3
    assert_interrupted(stage("train", "conv"))
    assert not (repo / paths.model("conv")).exists()
    assert not [p.name for p in (repo / "models").iterdir() if p.name.endswith(".tmp")]
    monkeypatch.setattr(files, "save_torch", SAVE_TORCH)
    result = stage("train", "conv")
    assert "a resume point after epoch 2" in result.stdout
    assert digest(repo / paths.model("conv")) == uninterrupted
    assert not (repo / paths.resume("conv")).exists()
    resumed = (repo / paths.curves("conv")).read_text()
    # Every column but the last, the epoch's wall time.
    assert [row.split(",")[:6] for row in resumed.splitlines()] == [
        row.split(",")[:6] for row in curves_whole.splitlines()
    ]


@pytest.mark.parametrize(
    "damage, warning",
    [
        (
            lambda repo, state: (repo / paths.resume("lin")).write_bytes(b"not a checkpoint"),
            f"warning: {paths.resume('lin')}: damaged resume point (UnpicklingError); training from the start",
        ),
        (  # the conv's state under lin's recipe: what code whose layers changed would find
            lambda repo, state: torch.save(state, repo / paths.resume("lin")),
            "warning: the resume point does not fit this model (Error(s) in loading state_dict for Sequential:); "
            "training from the start",
        ),
    ],
    ids=["damaged", "other-layers"],
)
def test_an_unusable_resume_point_is_said_in_one_warning_and_training_starts_over(
    repo, stage, monkeypatch, damage, warning
):
    configure_and_prepare(stage)
    assert stage("train", "lin").returncode == 0
    whole = digest(repo / paths.model("lin"))
    stop_after_saves(monkeypatch, 1)
    assert_interrupted(stage("train", "conv"))
    monkeypatch.setattr(files, "save_torch", SAVE_TORCH)
    state = torch.load(repo / paths.resume("conv"), weights_only=True)
    damage(repo, state | {"recipe": settings.Recipe.read(repo / paths.train_config("lin")).fingerprint()})
    result = stage("train", "lin")
    assert result.returncode == 0
    assert [line for line in result.stderr.splitlines() if line.startswith("warning:")] == [warning]
    assert digest(repo / paths.model("lin")) == whole


def test_curves_have_a_row_per_epoch_while_training_runs(repo, stage, monkeypatch):
    """Written after every epoch, so a plot of a running experiment has something to show."""
    configure_and_prepare(stage)
    written = repo / paths.curves("conv")
    rows_on_disk = []

    def write_then_read(path, history):
        write(path, history)
        assert not (repo / paths.model("conv")).exists()  # training still runs
        rows_on_disk.append(len(written.read_text().splitlines()) - 1)

    write = curves.write
    monkeypatch.setattr(curves, "write", write_then_read)
    assert stage("train", "conv").returncode == 0
    assert rows_on_disk == list(range(1, TINY["epochs"] + 1))


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda b: b[:-10], "truncated"),
        (lambda b: b"\x00\x00\x09" + b[3:], "bad magic number"),
        (lambda b: b[:4] + (601).to_bytes(4, "big") + b[8:], "need"),  # wrong count in the header
    ],
)
def test_corrupt_raw_file_is_one_line_and_leaves_no_output(repo, stage, damage, message):
    assert stage("configure").returncode == 0
    path = repo / "data" / "raw" / "train-images-idx3-ubyte"
    path.write_bytes(damage(path.read_bytes()))
    assert_one_line_error(stage("prepare"), str(path.relative_to(repo)), message)
    assert not (repo / paths.PREPARED).exists()


def test_mismatched_labels_and_missing_file(repo, stage):
    assert stage("configure").returncode == 0
    labels = repo / "data" / "raw" / "train-labels-idx1-ubyte"
    labels.write_bytes(idx_bytes(torch.zeros(599, dtype=torch.uint8)))
    assert_one_line_error(stage("prepare"), "600 images but 599 labels")
    labels.unlink()
    assert_one_line_error(stage("prepare"), "train-labels-idx1-ubyte: cannot read")


@pytest.mark.e2e
def test_download_reports_every_source_when_none_works(repo, tmp_path):
    env_dir = tmp_path / "empty"
    env_dir.mkdir()
    code = (
        "import sys; from fmnist.core import cli; from fmnist.data import sources; from stages import download;"
        "sources.DEBIAN_DIR = sources.Path(sys.argv[1]); sources.MIRRORS = ('http://127.0.0.1:9/',);"
        "cli.run(download.main)"
    )
    env = project.environment() | {"FASHION_MNIST_DIR": str(env_dir)}
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "no-debian")], cwd=repo, env=env, capture_output=True, text=True
    )
    assert_one_line_error(result, str(env_dir), "no-debian", "127.0.0.1:9", "apt-get install dataset-fashion-mnist")


@pytest.mark.e2e
def test_download_warns_when_the_named_directory_is_damaged_and_says_what_it_used(repo, tmp_path):
    good, named = tmp_path / "good", tmp_path / "named"
    write_raw(good)
    write_raw(named, gz=True)
    damaged = named / "train-images-idx3-ubyte.gz"
    damaged.write_bytes(damaged.read_bytes()[:-100])
    code = (
        "import sys; from fmnist.core import cli; from fmnist.data import idx, sources; from stages import download;"
        "good = sources.Path(sys.argv[1]);"  # the synthetic files' checksums stand in for Zalando's
        "idx.FILES = tuple(idx.IdxFile(f.name, idx.sha256((good / f.name).read_bytes()), f.shape) for f in idx.FILES);"
        "sources.DEBIAN_DIR = good; sources.MIRRORS = (); cli.run(download.main)"
    )
    env = project.environment() | {"FASHION_MNIST_DIR": str(named)}
    result = subprocess.run([sys.executable, "-c", code, str(good)], cwd=repo, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    [warning] = result.stderr.strip().splitlines()
    assert warning.startswith(f"warning: $FASHION_MNIST_DIR {named}: train-images-idx3-ubyte: corrupt gzip data")
    assert warning.endswith("; skipped")
    assert f"4 verified files from Debian package {good} in data/raw/" in result.stdout


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_runs_repeat_their_metrics(repo):
    """On CUDA, PyTorch's deterministic kernels (where it has them) make reruns repeat."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["device"] = "cuda"
    project.write_params(repo, params)
    project.stage(repo, "configure")
    project.stage(repo, "prepare")
    results = []
    for _ in range(2):
        project.stage(repo, "train", "conv")
        project.stage(repo, "evaluate", "conv")
        metrics = json.loads((repo / paths.test_metrics("conv")).read_text())
        results.append((metrics["test_accuracy"], metrics["test_loss"]))
        # The CNN's layers all have deterministic CUDA kernels (its global max-pool is a max with indices).
        determinism = json.loads((repo / "results" / "conv" / "provenance.json").read_text())["determinism"]
        assert determinism.startswith("deterministic CUDA kernels throughout"), determinism
    assert results[0] == results[1]
