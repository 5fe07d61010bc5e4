"""Known answers for attention rollout on the demo MViT (``models/demo_mvit.pyth``).

The same scripted videos and scoring as HiResCAM on ``demo_motion`` (``explain_scenes.py``):
the rollout's peak cell must overlap the acting object's box in >= 80 % of the moving,
rotating and flashing segments. Cascading randomisation (Adebayo et al., 2018) from the head
down through every block to the patch embedding must change the map each step (see the test
for the thresholds and why they differ from the CNNs').
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from app.analysis.catalog import load_catalog
from app.analysis.engine import Analyzer
from app.analysis.explain_rollout import METHOD, rollout
from app.analysis.loader import ModelLoader
from app.demo.synthetic import SyntheticScene
from app.options import JobOptions
from tests.conftest import REPO
from tests.known_answer.explain_scenes import (
    FORMATS,
    SEGMENT,
    demo_views,
    hit_rates,
    randomised_correlations,
    video,
)

__all__ = ["video"]  # the shared scripted-video fixture: imported so that pytest finds it here

MODELS = REPO / "models"
MODEL = "demo_mvit"
QUERY_POOLED_AT = 2
"""demo_mvit's block that pools queries (8x8 tokens to 4x4)."""


def test_rollout_peaks_on_the_acting_objects(video: tuple[Path, SyntheticScene]) -> None:
    path, scene = video
    analyzer = Analyzer(models_dir=MODELS, allowed_formats=FORMATS)
    result = analyzer.analyze(path, MODEL, JobOptions(segment_seconds=SEGMENT, explain=True)).to_dict()
    assert "explain_note" not in result["provenance"]
    hits = hit_rates(result, scene, METHOD)
    print(hits.line())
    assert hits.rate >= 0.8, f"the rollout's peak hit the acting objects in {hits.rate:.0%} of segments"


def _top_down(module: nn.Module) -> list[nn.Module]:
    """The head (with the norm before it), each block from the last, then the embeddings."""
    parts: list[nn.Module] = [nn.ModuleList([module.head, module.norm_embed])]  # type: ignore[list-item]
    parts += list(reversed(list(module.blocks)))  # type: ignore[arg-type]
    parts += [module.cls_positional_encoding, module.patch_embed]  # type: ignore[list-item]
    return parts


def test_rollout_depends_on_the_trained_weights() -> None:
    """Cascading randomisation from the head down. Every step must change the map (mean
    Spearman < 0.8; plain, unweighted rollout stays at 1.0 when the head is re-initialised), and
    once the blocks before the query pooling, whose attention the map is mostly made of, are
    random too, the map must be unrelated to the trained one (< 0.5). The strict "< 0.5 at every
    step" of the CNNs' check does not hold here: with the head and the top blocks random, the
    lower blocks' trained attention still concentrates on the object (0.72, 0.70, 0.56)."""
    spec = load_catalog(MODELS).get(MODEL)
    module = ModelLoader(MODELS, device="cpu").load(spec).module
    correlations = randomised_correlations(
        module,
        demo_views(spec, module),
        _top_down,
        lambda m, view, class_id: rollout(m, view, [class_id])[0].cam,
    )
    print("mean Spearman per cascade step (head first):", [round(c, 2) for c in correlations])
    assert all(c < 0.8 for c in correlations), correlations
    below_pooling = 1 + len(module.blocks) - QUERY_POOLED_AT  # type: ignore[arg-type]
    assert all(c < 0.5 for c in correlations[below_pooling:]), correlations
