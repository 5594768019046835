"""The stages as plain Python commands (as on a machine without DVC), on synthetic data."""

import errno
import hashlib
import json
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from fmnist.core import files, paths, settings
from fmnist.data import splits as data
from fmnist.model import checkpoint, inference
from tests import project
from tests.synthetic import idx_bytes, write_raw

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
    project.stage(repo, "prepare")
    project.stage(repo, "configure")
    first = digests(repo / paths.PREPARED)
    for name in TINY["models"]:
        project.stage(repo, "train", name)
        project.stage(repo, "evaluate", name)
        project.stage(repo, "export", name)
    project.stage(repo, "summarize")
    outputs = {
        p: digest(repo / p)
        for p in [
            paths.model("lin"),
            paths.model("conv"),
            paths.test_metrics("lin"),
            paths.test_metrics("conv"),
            paths.confusion("conv"),
        ]
    }
    assert digest(repo / "metrics" / "conv.json") == outputs[paths.test_metrics("conv")]  # published as is
    metrics = json.loads((repo / "metrics" / "conv.json").read_text())
    assert all(isinstance(value, (int, float)) for value in metrics.values()), metrics
    timing = json.loads((repo / "metrics" / "timing" / "conv.json").read_text())
    assert all(isinstance(value, (int, float)) for value in timing.values()), timing
    provenance = json.loads((repo / "reports" / "provenance" / "conv.json").read_text())
    assert provenance["params_hash"] and provenance["torch_version"] == torch.__version__ and provenance["device"]
    assert json.loads((repo / "metrics" / "lin.json").read_text())["test_accuracy"] > 0.5
    board = json.loads((repo / "reports" / "leaderboard.json").read_text())
    assert [row["model"] for row in board][0] == "lin" and len(board) == 2
    card = (repo / "reports" / "model_cards" / "conv.md").read_text()
    assert card.startswith("# conv") and f"Test accuracy **{metrics['test_accuracy']:.4f}**" in card
    assert json.loads((repo / "reports" / "provenance" / "conv.json").read_text())["multiply_adds"] > 0
    curves = (repo / "plots" / "curves" / "conv.csv").read_text().splitlines()
    assert curves[0] == "epoch,train_loss,train_accuracy,val_loss,val_accuracy,lr" and len(curves) == 4  # no wall time

    project.stage(repo, "prepare")
    assert digests(repo / paths.PREPARED) == first
    for name in TINY["models"]:
        project.stage(repo, "train", name)
        project.stage(repo, "evaluate", name)
    assert {p: digest(repo / p) for p in outputs} == outputs


@pytest.mark.e2e
def test_the_export_gives_evaluates_predictions_with_torch_alone(repo):
    # The program computes in fp32; evaluate at `precision: auto` would use bf16 on a CPU that has it.
    project.write_params(repo, TINY | {"precision": "fp32"})
    for command in (("prepare",), ("configure",), ("train", "conv"), ("evaluate", "conv"), ("export", "conv")):
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
    cfg = settings.Evaluation.read(repo / paths.evaluate_config("conv"))
    model, saved = checkpoint.load(repo / paths.model("conv"))
    runtime = inference.Runtime.create(cfg, saved["normalization"]["mean"], saved["normalization"]["std"])
    test = torch.load(repo / paths.PREPARED / "test.pt", weights_only=True)["images"]
    expected = inference.predict(runtime.place(model), test, runtime, cfg.eval_batch_size, cfg.tta_views)
    assert torch.allclose(logits, expected, atol=1e-5)  # fp32 on both sides: only summation order may differ


@pytest.mark.e2e
def test_checkpoint_loads_with_weights_only(repo):
    project.stage(repo, "prepare")
    project.stage(repo, "configure")
    project.stage(repo, "train", "lin")
    saved = torch.load(repo / paths.model("lin"), weights_only=True)
    assert saved["arch"] == "logreg" and 1 <= saved["best_epoch"] <= 3


def test_bad_parameter_stops_every_stage_before_work(repo, stage):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["models"]["conv"]["learning_rate"] = 0.1
    project.write_params(repo, params)
    # One as a user runs it, in a process of its own: the message must come without a traceback.
    assert_one_line_error(project.stage(repo, "train", "conv", check=False), "models.conv.learning_rate: unknown key")
    for command in ("prepare", "configure", "train conv", "evaluate lin", "summarize"):
        assert_one_line_error(stage(*command.split()), "models.conv.learning_rate: unknown key")
    assert not (repo / paths.PREPARED).exists() and not (repo / "models").exists()


def test_val_size_larger_than_data_is_refused(repo, stage):
    project.write_params(repo, {**TINY, "val_size": 700})
    assert_one_line_error(stage("prepare"), "val_size = 700: must not exceed")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize(
    "where, key, value, message",
    [
        ("top", "device", "cuda", 'params.yaml: device = "cuda": CUDA is not available here'),
        ("lin", "device", "cuda:1", 'params.yaml: models.lin.device = "cuda:1": CUDA is not available here'),
        ("top", "precision", "fp16", 'params.yaml: precision = "fp16": fp16 needs CUDA'),
        ("lin", "precision", "fp16", 'params.yaml: models.lin.precision = "fp16": fp16 needs CUDA'),
    ],
)
def test_machine_refusals_name_the_key_as_written(repo, stage, where, key, value, message):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    (params if where == "top" else params["models"]["lin"])[key] = value
    project.write_params(repo, params)
    assert stage("configure").returncode == 0  # the spec is valid anywhere; only this machine lacks it
    for name in ("train", "evaluate"):
        assert_one_line_error(stage(name, "lin"), message)


def test_train_and_evaluate_refuse_settings_configure_did_not_write(repo, stage):
    assert stage("prepare").returncode == 0
    assert_one_line_error(stage("train", "lin"), "configs/lin/train.json: missing", "python -m stages.configure lin")
    assert stage("configure").returncode == 0
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["models"]["lin"]["lr"] = 0.02
    project.write_params(repo, params)
    assert_one_line_error(stage("train", "lin"), "out of date with params.yaml")
    assert stage("evaluate", "lin").returncode == 2  # its file is older too: lr changes the params hash


def test_configure_starts_without_torch(repo):
    code = "import runpy, sys; runpy.run_module('stages.configure', run_name='__main__'); print('torch' in sys.modules)"
    result = project.run(repo, sys.executable, "-c", code)
    assert result.stdout.strip().splitlines()[-1] == "False"
    assert json.loads((repo / paths.evaluate_config("conv")).read_text())["tta_views"] == 6
    assert "tta_views" not in json.loads((repo / paths.train_config("conv")).read_text())


def set_train_subset(repo, size: int, model: str | None) -> None:
    """`train_subset: size` under `model`, or as the global when model is None."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    (params["models"][model] if model else params)["train_subset"] = size
    project.write_params(repo, params)


def test_train_subset_larger_than_data_is_refused(repo, stage):
    assert stage("prepare").returncode == 0
    set_train_subset(repo, 10_000, "lin")
    assert stage("configure").returncode == 0
    assert_one_line_error(stage("train", "lin"), "models.lin.train_subset = 10000: must not exceed the 500 images")
    project.write_params(repo, TINY)
    set_train_subset(repo, 10_000, None)  # the global, named as such
    assert stage("configure").returncode == 0
    assert_one_line_error(stage("train", "lin"), "params.yaml: train_subset = 10000: must not exceed")


def test_train_before_prepare_is_one_line(repo, stage):
    assert stage("configure").returncode == 0
    assert_one_line_error(stage("train", "lin"), "data/prepared/train.pt: missing; run the prepare stage first")


def test_a_batch_of_one_image_is_refused_before_training(repo, stage):
    assert stage("prepare").returncode == 0
    set_train_subset(repo, 1, "conv")
    assert stage("configure").returncode == 0
    assert_one_line_error(stage("train", "conv"), "models.conv.train_subset = 1: leaves 1 image(s) per batch")


def test_a_full_disk_while_saving_the_model_is_one_line(repo, stage, monkeypatch):
    assert stage("prepare").returncode == 0 and stage("configure").returncode == 0
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


@pytest.mark.parametrize(
    "damage, warning",
    [
        (lambda path, state: path.write_bytes(b"not a checkpoint"), "damaged resume point (UnpicklingError)"),
        (
            lambda path, state: torch.save({**state, "layout": "older code"}, path),
            "resume point from other code (its layers differ)",
        ),
    ],
)
def test_an_unusable_resume_point_is_said_in_one_warning_and_training_starts_over(repo, stage, damage, warning):
    assert stage("prepare").returncode == 0 and stage("configure").returncode == 0
    assert stage("train", "lin").returncode == 0
    whole = digest(repo / paths.model("lin"))
    state = {"params_hash": settings.Training.read(repo / paths.train_config("lin")).fingerprint()}
    damage(repo / paths.resume("lin"), state)
    result = stage("train", "lin")
    assert result.returncode == 0 and "resuming" not in result.stdout
    assert [line for line in result.stderr.splitlines() if line.startswith("warning:")] == [
        f"warning: {paths.resume('lin')}: {warning}; training from the start"
    ]
    assert digest(repo / paths.model("lin")) == whole


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda b: b[:-10], "truncated"),
        (lambda b: b"\x00\x00\x09" + b[3:], "bad magic number"),
        (lambda b: b[:4] + (601).to_bytes(4, "big") + b[8:], "need"),  # wrong count in the header
    ],
)
def test_corrupt_raw_file_is_one_line_and_leaves_no_output(repo, stage, damage, message):
    path = repo / "data" / "raw" / "train-images-idx3-ubyte"
    path.write_bytes(damage(path.read_bytes()))
    assert_one_line_error(stage("prepare"), str(path.relative_to(repo)), message)
    assert not (repo / paths.PREPARED).exists()


def test_mismatched_labels_and_missing_file(repo, stage):
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
        "import sys; from fmnist import sources, cli; from stages import download;"
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
        "import sys; from fmnist import cli, idx, sources; from stages import download;"
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


def run_until_resume_point(repo, name):
    """Start training, stop it with SIGTERM once its first epoch is saved; return the process."""
    process = project.start(repo, sys.executable, "-m", "stages.train", name, stderr=subprocess.PIPE, text=True)
    project.wait_for_resume_point(repo, name, process)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    return process


def prepare_with_epochs(repo, epochs: int) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["epochs"] = epochs
    project.write_params(repo, params)
    project.stage(repo, "prepare")
    project.stage(repo, "configure")


@pytest.mark.e2e
def test_interrupted_training_leaves_no_output_and_resumes_to_identical_result(repo):
    prepare_with_epochs(repo, 6)
    project.stage(repo, "train", "conv", "--fresh")
    curves = (repo / paths.curves("conv")).read_text()
    uninterrupted = digest(repo / paths.model("conv"))
    (repo / paths.model("conv")).unlink()

    process = run_until_resume_point(repo, "conv")
    assert process.returncode == 130, process.stderr.read()
    assert not (repo / paths.model("conv")).exists()
    assert not list((repo / "models").glob("*.tmp"))
    result = project.stage(repo, "train", "conv")
    assert "resuming after epoch" in result.stdout
    assert digest(repo / paths.model("conv")) == uninterrupted
    assert not (repo / paths.resume("conv")).exists()
    resumed = (repo / paths.curves("conv")).read_text()
    assert [row.split(",")[:6] for row in resumed.splitlines()] == [row.split(",")[:6] for row in curves.splitlines()]


@pytest.mark.e2e
def test_curves_have_rows_while_training_runs(repo):
    """Written after every epoch, so a plot of a running experiment has something to show."""
    prepare_with_epochs(repo, 12)
    curves = repo / paths.curves("conv")
    process = subprocess.Popen(
        [sys.executable, "-m", "stages.train", "conv"],
        cwd=repo,
        env=project.environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    rows_seen_while_running = set()
    while process.poll() is None:
        if curves.exists():
            rows_seen_while_running.add(len(curves.read_text().splitlines()) - 1)  # whole: written atomically
        time.sleep(0.01)
    assert process.returncode == 0
    assert len(rows_seen_while_running - {12}) >= 2, rows_seen_while_running  # several epochs before the end
    assert len(curves.read_text().splitlines()) == 1 + 12


def interrupt_prepare_mid_write(repo) -> subprocess.Popen:
    """SIGTERM prepare as soon as its staging directory appears, i.e. while it writes the splits."""
    process = subprocess.Popen(
        [sys.executable, "-m", "stages.prepare"],
        cwd=repo,
        env=project.environment(),
        stderr=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    data_dir = repo / "data"
    while process.poll() is None and not any(p.name.startswith(".prepared.") for p in data_dir.iterdir()):
        pass  # no sleep: the writes take a fraction of a second
    assert process.poll() is None, "prepare ended before its staging directory was seen"
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    return process


@pytest.mark.e2e
def test_interrupted_prepare_leaves_splits_complete_or_absent(repo):
    write_raw(repo / "data" / "raw", train=30000)  # large enough that writing takes a while
    prepared = repo / paths.PREPARED
    assert interrupt_prepare_mid_write(repo).returncode == 130
    assert not prepared.exists()
    project.stage(repo, "prepare")
    whole = digests(prepared)
    assert interrupt_prepare_mid_write(repo).returncode == 130
    assert digests(prepared) == whole  # the previous splits, untouched
    assert not [p.name for p in (repo / "data").iterdir() if p.name.startswith(".")]


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_runs_repeat_their_metrics(repo):
    """On CUDA, PyTorch's deterministic kernels (where it has them) make reruns repeat."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["device"] = "cuda"
    project.write_params(repo, params)
    project.stage(repo, "prepare")
    project.stage(repo, "configure")
    results = []
    for _ in range(2):
        project.stage(repo, "train", "conv")
        project.stage(repo, "evaluate", "conv")
        metrics = json.loads((repo / paths.test_metrics("conv")).read_text())
        results.append((metrics["test_accuracy"], metrics["test_loss"]))
        # The CNN's layers all have deterministic CUDA kernels (its global max-pool is an amax).
        determinism = json.loads((repo / "results" / "conv" / "provenance.json").read_text())["determinism"]
        assert determinism.startswith("deterministic CUDA kernels throughout"), determinism
    assert results[0] == results[1]
