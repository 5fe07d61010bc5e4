"""The API process must stay light: importing it pulls in neither torch nor av, nor does
probing an upload (that runs in a sandboxed child)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.media import write_video


def test_api_import_pulls_in_neither_torch_nor_av() -> None:
    code = (
        "import sys, app.api.app, app.api.routes.jobs, app.api.routes.models, app.analysis.catalog;"
        "heavy = sorted(m for m in ('torch', 'av', 'pytorchvideo', 'torchvision') if m in sys.modules);"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"API imported heavy modules: {out.stdout}"


def test_the_api_probes_uploads_without_loading_av(tmp_path: Path) -> None:
    """The upload probe runs in a child process; the API process itself never loads PyAV."""
    video = write_video(tmp_path / "v.mp4", seconds=0.5, width=64, height=48)
    code = (
        "import sys; from pathlib import Path; from app.api.app import create_app; "
        "from app.settings import Settings;"
        f"app = create_app(Settings(data_dir=Path({str(tmp_path / 'data')!r}), embedded_worker=False));"
        f"info = app.state.prober.probe_video(Path({str(video)!r}), filename='v.mp4',"
        " allowed_formats=app.state.settings.allowed_format_list);"
        "app.state.prober.close();"
        "print(info.width, info.height, 'av' in sys.modules, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["64", "48", "False", "False"], out.stderr
