"""Where DVC's tools watch a running training: Studio's live metrics and VS Code's refresh signal.

Both as DVCLive does them, without it: dvc_studio_client ships with DVC, and neither runs when DVC
is absent (a plain-Python run, or a machine with torch alone).
"""

import logging
import os
import sys
from pathlib import Path

from fmnist.core import files


class Live:
    """Told after every epoch; does only what the environment DVC gave the stage asks for."""

    def __init__(self, name: str, curves_path: Path, environ=os.environ):
        self.name, self.curves_path = name, str(curves_path)
        self.studio = studio_config(environ)
        self.experiment = environ.get("DVC_EXP_NAME"), environ.get("DVC_EXP_BASELINE_REV")
        # https://github.com/iterative/dvclive/blob/main/src/dvclive/vscode.py: DVCLive's signal to
        # the VS Code extension, which misses file changes deep inside a queued run's workspace.
        root = environ.get("DVC_ROOT") if "DVC_STAGE" in environ else None
        self.signal = Path(root, ".dvc", "tmp", "exps", "run", "DVCLIVE_STEP_COMPLETED") if root else None

    def epoch_done(self, epoch: int, rows: list[dict]) -> None:
        if self.signal:
            files.write_json(self.signal, {"pid": os.getpid(), "step": epoch})
        if self.studio:
            self.post(epoch, rows)

    def post(self, epoch: int, rows: list[dict]) -> None:
        from dvc_studio_client.post_live_metrics import post_live_metrics

        name, baseline = self.experiment
        metrics = {self.curves_path: {"data": {key: value for key, value in rows[-1].items() if key != "epoch"}}}
        plots = {self.curves_path: {"data": rows}}
        logging.getLogger("dvc_studio_client").setLevel(logging.ERROR)  # its warnings: one line of ours instead
        try:
            posted = post_live_metrics(
                "data",
                baseline,
                name,
                "dvclive",
                step=epoch,
                metrics=metrics,
                plots=plots,
                dvc_studio_config=self.studio,
            )
        except Exception as error:  # a monitoring service must never stop a training run
            posted, why = False, type(error).__name__
        else:
            why = "Studio refused it or could not be reached"
        if not posted:
            print(
                f"warning: Studio: epoch {epoch} of {self.name} not posted ({why}); "
                "training goes on, and posts no more",
                file=sys.stderr,
            )
            self.studio = None

    def close(self) -> None:
        if self.signal:
            self.signal.unlink(missing_ok=True)


def studio_config(environ) -> dict | None:
    """Studio's settings when `dvc exp run` passed a token (from `dvc studio login` or DVC_STUDIO_TOKEN)."""
    token = environ.get("DVC_STUDIO_TOKEN") or environ.get("STUDIO_TOKEN")
    if not (token and environ.get("DVC_EXP_NAME") and environ.get("DVC_EXP_BASELINE_REV")):
        return None
    try:
        import dvc_studio_client  # noqa: F401  (installed with DVC)
    except ImportError:
        return None
    config = {"token": token}
    for key, variable in (("url", "DVC_STUDIO_URL"), ("repo_url", "DVC_STUDIO_REPO_URL")):
        if environ.get(variable):
            config[key] = environ[variable]
    return config
