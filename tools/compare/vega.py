"""DVC's Vega-Lite plots without the internet: `dvc plots show` loads Vega from a CDN, and offline
every Vega plot in its page is a blank panel.

    python -m tools.compare.vega     (make setup runs it)

writes a page template with Vega, Vega-Lite and vega-embed inlined (vl-convert-python's bundle,
pinned in requirements.txt) and sets `plots.html_template` in .dvc/config.local to it, so `dvc
plots show` and `dvc plots diff` draw offline in this checkout. `png` draws a spec with the same
engine, for the pull-request report.
"""

import subprocess
import sys
from pathlib import Path

import vl_convert

from fmnist.core import files

TEMPLATE = Path(".dvc/tmp/plots.html")  # .dvc/tmp: ignored by git, kept by DVC

# DVC's own page (dvc_render.html.PAGE_HTML) with the scripts inlined instead of its {scripts},
# which would add the CDN's <script> tags.
PAGE = """<!DOCTYPE html>
<html>
<head>
    {refresh_tag}
    <title>DVC Plot</title>
    <script type="text/javascript">
BUNDLE
    </script>
    <style>
        table {
            border-spacing: 15px;
        }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>"""


def page() -> str:
    return PAGE.replace("BUNDLE", vl_convert.javascript_bundle())


def png(spec: dict) -> bytes:
    return vl_convert.vegalite_to_png(spec, scale=2)


def svg(spec: dict) -> str:
    return vl_convert.vegalite_to_svg(spec)


def by_model(rows: list[dict], y: str, title: str, template_dir: Path = Path(".dvc/plots")) -> dict:
    """A filled Vega-Lite spec of dvc.yaml's curve plots: `rows` carry rev, model, epoch and `y`."""
    from dvc_render.vega import VegaRenderer

    renderer = VegaRenderer(
        rows, title, template="by_model", template_dir=str(template_dir), x="epoch", y=y, title=title
    )
    return renderer.get_filled_template()


def install() -> None:
    files.write_text(TEMPLATE, page())
    # Relative paths in DVC's config are relative to .dvc/.
    template = str(TEMPLATE.relative_to(".dvc"))
    subprocess.run([sys.executable, "-m", "dvc", "config", "--local", "plots.html_template", template], check=True)
    print(f"vega: dvc plots draws offline ({TEMPLATE}, {len(TEMPLATE.read_bytes()) // 1024} KiB)")


if __name__ == "__main__":
    install()
