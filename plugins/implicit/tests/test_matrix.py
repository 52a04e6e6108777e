"""The customer × item matrix and its id maps."""

import numpy as np
from kosmos_implicit._matrix import Matrix

from kosmos.plugin import Interaction, InteractionType, TrainingData

BUY, VIEW, DISMISS = InteractionType.PURCHASE, InteractionType.VIEW, InteractionType.DISMISS


def test_weights_are_summed_and_dismissals_left_out():
    data = TrainingData(
        interactions=[
            Interaction("c1", "x", VIEW, 0.5, 10.0),
            Interaction("c1", "x", BUY, 2.0, 20.0),
            Interaction("c1", "y", DISMISS, 0.0, 30.0),
            Interaction("c2", "y", BUY, 1.0, 40.0),
            Interaction("c3", "x", DISMISS, 0.0, 50.0),  # only a dismissal: no row at all
        ],
        item_ids=["z", "x"],
    )
    m = Matrix.build(data)
    assert m.item_ids == ("z", "x", "y")  # the catalog first, untouched items included
    assert m.customer_ids == ("c1", "c2")
    assert m.user_items.toarray().tolist() == [[0.0, 2.5, 0.0], [0.0, 0.0, 1.0]]
    assert m.folded_until.tolist() == [50.0, 50.0]


def test_scan_picks_only_what_the_row_does_not_hold():
    data = TrainingData([Interaction("c1", "x", BUY, 1.0, 100.0)], item_ids=["x", "y"])
    m = Matrix.build(data)
    recent = [
        Interaction("c1", "y", VIEW, 1.0, 200.0),  # after the fit: new
        Interaction("c1", "y", DISMISS, 0.0, 150.0),  # no weight
        Interaction("c1", "nope", VIEW, 1.0, 150.0),  # an item the model does not know
        Interaction("c1", "x", BUY, 1.0, 100.0),  # already in the row
    ]
    assert m.scan(0, recent) == {1: 1.0}
    assert m.scan(None, recent) == {1: 1.0, 0: 1.0}
    touched = []
    m.scan(0, recent, touched)
    assert touched == [1, 1]  # the new view and the old dismissal; x is in the row already


def test_updated_copies_on_write_and_moves_the_fold_in_time():
    data = TrainingData([Interaction("c1", "x", BUY, 1.0, 100.0)], item_ids=["x", "y"])
    m = Matrix.build(data)
    new, changed = m.updated(
        [
            Interaction("c1", "y", BUY, 2.0, 300.0),
            Interaction("c9", "x", VIEW, 1.0, 250.0),
            Interaction("c9", "brand-new", VIEW, 1.0, 260.0),  # ignored until the next fit
        ]
    )
    assert changed.tolist() == [0, 1]
    assert new.customer_ids == ("c1", "c9")
    assert new.user_items.toarray().tolist() == [[1.0, 2.0], [1.0, 0.0]]
    assert new.folded_until.tolist() == [300.0, 250.0]
    assert m.user_items.toarray().tolist() == [[1.0, 0.0]]  # the old one is untouched
    assert np.array_equal(m.folded_until, [100.0])
