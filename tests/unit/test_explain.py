"""``app.analysis.explain``: maps put back on the displayed frame, the model left untouched."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from app.analysis.catalog import load_catalog
from app.analysis.explain import (
    ExplainUnsupported,
    Geometry,
    cell_box,
    display_size,
    grad_cam,
    register,
    rounded,
)
from app.analysis.prep import short_side_size, view_offsets
from app.analysis.results import Explanation
from app.api.forms import parse_job_form
from app.options import JobOptions
from tests.conftest import REPO


def test_a_hot_feature_cell_lands_where_the_crop_saw_it() -> None:
    """A 320x240 frame scaled to 85x64, its centre 64x64 crop seen as an 8x8 grid: the cell
    on crop pixel (y=32, x=48) (feature (4, 6) at stride 8) must peak on that spot of the
    displayed frame."""
    display = (240, 320)
    scaled = short_side_size(*display, 64)
    offset = view_offsets(*scaled, 64, 1)[0]
    assert scaled == (64, 85) and offset == (0, 10)
    cam = torch.zeros(2, 8, 8)
    cam[1, 4, 6] = 1.0
    grid = register(cam, Geometry(display, scaled, 64, offset))
    assert grid.shape == (2, 8, 11) and float(grid.max()) == 1.0 and float(grid[0].max()) == 0.0
    i, j = divmod(int(grid[1].argmax()), 11)
    x0, y0, x1, y1 = cell_box((8, 11), display, i, j)
    scale = 240 / 64
    x, y = (10 + 48) * scale, 32 * scale  # the crop pixel's place on the displayed frame
    assert x0 <= x < x1 and y0 <= y < y1, ((x0, y0, x1, y1), (x, y))


def test_cells_outside_the_crop_stay_zero() -> None:
    display = (144, 256)  # 16:9 -> 64x113, crop at x 24..88
    scaled = short_side_size(*display, 64)
    offset = view_offsets(*scaled, 64, 1)[0]
    grid = register(torch.ones(1, 8, 8), Geometry(display, scaled, 64, offset))
    assert grid.shape == (1, 8, 14)
    assert float(grid[0, :, 0].max()) == 0.0 and float(grid[0, :, -1].max()) == 0.0
    assert float(grid[0, :, 7].min()) == 1.0


def test_quarter_turns_swap_the_displayed_sides() -> None:
    assert display_size(1920, 1080, 90) == (1920, 1080)
    assert display_size(1920, 1080, 270) == (1920, 1080)
    assert display_size(1920, 1080, 180) == (1080, 1920)


def test_rounded_gives_three_decimals() -> None:
    assert rounded(torch.tensor([[0.12345, 1.0], [0.0, 0.6666]])) == [[0.123, 1.0], [0.0, 0.667]]


class TinyNet(nn.Module):
    """A pytorchvideo-shaped Net: 3D blocks, then a head."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            [
                nn.Sequential(nn.Conv3d(3, 4, 3, padding=1), nn.ReLU()),
                nn.Sequential(nn.Conv3d(4, 4, 3, padding=1), nn.ReLU()),
                nn.Sequential(nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(4, 3)),
            ]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


def test_maps_leave_the_model_untouched_even_under_inference_mode() -> None:
    torch.manual_seed(0)
    net = TinyNet().eval()
    before = copy.deepcopy(net.state_dict())
    view = torch.randn(3, 4, 8, 8)
    with torch.inference_mode():
        cams = grad_cam(net, view, [0, 2])
    assert [c.class_id for c in cams] == [0, 2]
    for cam in cams:
        assert cam.cam.shape == (4, 8, 8) and float(cam.cam.min()) >= 0 and float(cam.cam.max()) <= 1
        assert len(cam.frame_weights) == 4 and max(cam.frame_weights) == pytest.approx(1.0)
    assert all(p.grad is None for p in net.parameters())
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert not net.blocks[0][0]._forward_hooks, "hooks are removed"


def test_models_without_3d_blocks_are_unsupported() -> None:
    with pytest.raises(ExplainUnsupported):
        grad_cam(nn.Linear(3, 3), torch.randn(3, 4, 8, 8), [0])


def test_explanation_json_shape() -> None:
    item = Explanation(1, "rotating", 4, "hirescam", ((0.5, 1.0), (0.6, 0.25)), (0.55,), [[[0.0, 1.0]]])
    assert item.to_dict() == {
        "segment": 1,
        "label": "rotating",
        "class_id": 4,
        "method": "hirescam",
        "frames": [{"time": 0.5, "weight": 1.0}, {"time": 0.6, "weight": 0.25}],
        "heatmap": {"t": 1, "h": 1, "w": 2, "times": [0.55], "data": [[[0.0, 1.0]]]},
    }


@pytest.mark.parametrize(
    ("text", "want"), [("true", True), ("on", True), ("1", True), ("false", False), ("0", False)]
)
def test_explain_is_a_form_option_off_by_default(text: str, want: bool) -> None:
    assert JobOptions().explain is False
    _, options = parse_job_form({"explain": text}, "demo_motion", load_catalog(REPO / "models"))
    assert options.explain is want
