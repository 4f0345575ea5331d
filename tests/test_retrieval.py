"""Retrieval metrics: ranks of the paired item, ties counted against, recall@k."""

import numpy as np

from projects.image_text import retrieval


def test_ranks_and_recall():
    # Query i's pair is key i; query 1 prefers key 2, query 2 ties between keys 1 and 2.
    queries = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    keys = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    ranks = retrieval.correct_ranks(queries, keys, chunk=2)
    np.testing.assert_array_equal(ranks, [0, 1, 1])
    assert retrieval.recall_at(ranks, (1, 2)) == {1: 1 / 3, 2: 1.0}


def test_random_embeddings_recall_is_near_chance():
    rng = np.random.default_rng(0)
    queries, keys = rng.normal(size=(2, 500, 8))
    keys /= np.linalg.norm(keys, axis=1, keepdims=True)
    recall = retrieval.recall_at(retrieval.correct_ranks(queries, keys), (1, 10))
    assert recall[1] < 0.01 and 0.005 < recall[10] < 0.05  # chance: 0.002, 0.02
    perfect = retrieval.recall_at(retrieval.correct_ranks(keys, keys), (1,))
    assert perfect[1] == 1.0
