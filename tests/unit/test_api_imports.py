"""The API process must stay light: importing it pulls in neither torch nor av."""

from __future__ import annotations

import subprocess
import sys


def test_api_import_pulls_in_neither_torch_nor_av() -> None:
    code = (
        "import sys, app.api.app, app.api.routes.jobs, app.api.routes.models, app.analysis.catalog;"
        "heavy = sorted(m for m in ('torch', 'av', 'pytorchvideo', 'torchvision') if m in sys.modules);"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"API imported heavy modules: {out.stdout}"
