"""Studio's live metrics against a local stub of its API, and VS Code's step signal."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from fmnist.train import live
from tests import project

BASELINE = "a" * 40
ROWS = [{"epoch": 1, "train_loss": 0.9, "val_accuracy": 0.8}, {"epoch": 2, "train_loss": 0.7, "val_accuracy": 0.85}]


@pytest.fixture
def studio():
    """A stand-in for Studio on 127.0.0.1 that records every request; `status` sets its answer."""
    received, answer = [], {"status": 200}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append({"path": self.path, "token": self.headers["Authorization"], **json.loads(body)})
            self.send_response(answer["status"])
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield {"url": f"http://127.0.0.1:{server.server_port}", "received": received, "answer": answer}
    server.shutdown()


def experiment_env(studio) -> dict:
    """What `dvc exp run` puts in a stage's environment when a Studio token is configured."""
    return {
        "DVC_STUDIO_TOKEN": "secret",
        "DVC_STUDIO_URL": studio["url"],
        "DVC_STUDIO_REPO_URL": "https://example.com/r",
        "DVC_EXP_NAME": "quick-fox",
        "DVC_EXP_BASELINE_REV": BASELINE,
    }


def test_without_a_token_nothing_is_sent_or_written(studio, tmp_path):
    watchers = live.Live("m", "results/m/curves.csv", {"DVC_EXP_NAME": "x", "DVC_EXP_BASELINE_REV": BASELINE})
    watchers.epoch_done(1, ROWS[:1])
    assert watchers.studio is None and watchers.signal is None and studio["received"] == []


def test_each_epoch_posts_its_curve_rows_and_metrics_as_dvclive_does(studio):
    watchers = live.Live("m", "results/m/curves.csv", experiment_env(studio))
    watchers.epoch_done(1, ROWS[:1])
    watchers.epoch_done(2, ROWS)
    posts = studio["received"]
    assert {post["path"] for post in posts} == {"/api/live"} and {post["token"] for post in posts} == {"token secret"}
    assert all(
        post["type"] == "data" and post["name"] == "quick-fox" and post["baseline_sha"] == BASELINE for post in posts
    )
    with_plots = [post for post in posts if "plots" in post]
    assert [post["step"] for post in with_plots] == [1, 2]
    assert with_plots[-1]["plots"] == {"results/m/curves.csv": {"data": ROWS}}
    metrics = [post["metrics"] for post in posts if "metrics" in post]
    assert metrics[-1] == {"results/m/curves.csv": {"data": {"train_loss": 0.7, "val_accuracy": 0.85}}}


def test_a_failed_post_is_one_warning_and_training_goes_on(studio, capsys):
    studio["answer"]["status"] = 500
    watchers = live.Live("m", "results/m/curves.csv", experiment_env(studio))
    for epoch in (1, 2, 3):
        watchers.epoch_done(epoch, ROWS[:1])
    warnings = capsys.readouterr().err.strip().splitlines()
    assert len(warnings) == 1 and warnings[0].startswith("warning: Studio: epoch 1 of m not posted")
    assert len(studio["received"]) == 1  # it stopped trying


def test_the_vs_code_signal_names_the_process_and_step_and_goes_at_the_end(tmp_path):
    watchers = live.Live("m", "results/m/curves.csv", {"DVC_STAGE": "train@m", "DVC_ROOT": str(tmp_path)})
    watchers.epoch_done(3, ROWS)
    signal = tmp_path / ".dvc" / "tmp" / "exps" / "run" / "DVCLIVE_STEP_COMPLETED"
    assert json.loads(signal.read_text()) == {"pid": __import__("os").getpid(), "step": 3}
    watchers.close()
    assert not signal.exists()


def test_the_train_stage_posts_after_every_epoch(studio, tmp_path, monkeypatch, capsys):
    params = {"epochs": 2, "val_size": 100, "batch_size": 64, "models": {"lin": {"arch": "logreg", "lr": 0.01}}}
    repo = project.plain_project(tmp_path / "repo", params)
    for variable, value in experiment_env(studio).items():
        monkeypatch.setenv(variable, value)
    for command in (("configure",), ("prepare",), ("train", "lin")):
        assert project.stage_in_process(repo, monkeypatch, capsys, *command).returncode == 0
    assert [post["step"] for post in studio["received"] if "plots" in post] == [1, 2]
