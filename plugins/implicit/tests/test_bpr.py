"""BPR beyond the contract."""

import kosmos_implicit
import numpy as np

from kosmos.plugin import Interaction, InteractionType, RecommendQuery
from kosmos.plugin.testing import checkerboard

SETTINGS = {"factors": "16", "learning_rate": "0.05"}


def test_fitting_twice_gives_the_same_scores():
    data = checkerboard()
    a, b = kosmos_implicit.create_bpr(SETTINGS), kosmos_implicit.create_bpr(SETTINGS)
    a.fit(data)
    b.fit(data)
    b.fit(data)
    for c in ("a-c0", "b-c7"):
        q = RecommendQuery(c, k=17)
        assert a.recommend(q) == b.recommend(q)
    assert np.isfinite([s.score for s in a.recommend(RecommendQuery("a-c0", k=17))]).all()


def test_recent_interactions_filter_but_do_not_fold_in():
    data = checkerboard()
    model = kosmos_implicit.create_bpr(SETTINGS)
    model.fit(data)
    recent = [Interaction("a-c2", "a-i2", InteractionType.VIEW, 1.0, data.now + 60)]
    plain = model.recommend(RecommendQuery("a-c2", k=17))
    with_recent = model.recommend(RecommendQuery("a-c2", k=17, recent_interactions=recent))
    # BPR has no per-customer solve to fold clicks into: same ranking; the recent item only
    # becomes the "because" of the items that resemble it.
    assert [(s.item_id, s.score) for s in with_recent] == [(s.item_id, s.score) for s in plain]
    assert {s.because_item_id for s in with_recent} <= {"a-i2", ""}
    filtered = model.recommend(
        RecommendQuery("a-c2", k=17, recent_interactions=recent, filter_already_seen=True)
    )
    assert "a-i2" not in [s.item_id for s in filtered]
    stranger = [Interaction("stranger", "a-i2", InteractionType.VIEW, 1.0, data.now + 60)]
    assert model.recommend(RecommendQuery("stranger", k=3, recent_interactions=stranger)) == []
