import numpy as np

from kosmos.plugin import closest_history


def test_each_candidate_gets_its_most_similar_past_item():
    history = np.array([[1.0, 0.0], [0.0, 1.0]])
    candidates = np.array([[0.9, 0.1], [0.2, 3.0], [-1.0, -1.0]])
    assert closest_history(candidates, history) == [0, 1, -1]  # -1: nothing alike


def test_an_item_never_explains_itself():
    vectors = np.array([[1.0, 0.0], [0.8, 0.2]])
    best = closest_history(vectors, vectors, candidate_keys=[7, 8], history_keys=[7, 8])
    assert best == [1, 0]


def test_empty_inputs():
    assert closest_history(np.zeros((2, 3)), np.zeros((0, 3))) == [-1, -1]
