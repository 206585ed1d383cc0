"""Neighbour smoothing in labelling and self-training: who votes, by how much, and how many keep each theme."""

from __future__ import annotations

import numpy as np

from model.cluster import ClusterInfo
from model.label import _mixture_probability, among_top_words, cluster_vote, nearest, same_count_cuts, smooth
from model.themes import Theme


def _unit(rows) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_a_paragraph_is_averaged_with_its_nearest_neighbour_not_itself() -> None:
    # Two tight pairs on opposite axes: with one neighbour each, a paragraph's neighbour is its partner.
    emb = _unit([[1, 0.01], [1, -0.01], [0.01, 1], [-0.01, 1]])
    neighbours = nearest(emb, k=1, per_neighbour=1)
    assert neighbours[:, 0].tolist() == [1, 0, 3, 2]
    scores = np.array([[0.9], [0.1], [0.6], [0.2]], dtype=np.float32)
    np.testing.assert_allclose(smooth(scores, neighbours)[:, 0], [0.5, 0.5, 0.4, 0.4], rtol=1e-6)


def test_paragraphs_outside_the_pool_take_neighbours_from_the_pool_only() -> None:
    # Paragraph 2 is outside the pool; its nearest paragraph (3, also outside) must not be its neighbour.
    emb = _unit([[1, 0.2], [0.2, 1], [1, 0.0], [1, 0.01]])
    neighbours = nearest(emb, pool=np.array([0, 1]), k=1, per_neighbour=1)
    assert neighbours[:, 0].tolist() == [1, 0, 0, 0]


def test_neighbours_are_at_most_one_per_hundred_paragraphs() -> None:
    emb = _unit(np.random.default_rng(0).standard_normal((250, 8)))
    assert nearest(emb[:99]).shape == (99, 0)
    assert nearest(emb).shape == (250, 2)
    scores = np.random.default_rng(1).random((99, 2))
    np.testing.assert_array_equal(smooth(scores, nearest(emb[:99])), scores)   # nobody to vote: unchanged


def test_a_large_pool_is_searched_by_nn_descent_and_finds_the_exact_neighbours(monkeypatch) -> None:
    # 40 tight groups of 15: NN-descent (used from EXACT_BELOW paragraphs on) must find each paragraph's group
    # mates as the exact search does, never the paragraph itself, the same for the same seed; a duplicate row is
    # its twin's neighbour, not its own.
    import model.label as label_module

    rng = np.random.default_rng(0)
    centres = rng.standard_normal((40, 32))
    emb = _unit(np.repeat(centres, 15, axis=0) + 0.05 * rng.standard_normal((600, 32)))
    emb[1] = emb[0]
    exact = nearest(emb, k=5, per_neighbour=1)
    monkeypatch.setattr(label_module, "EXACT_BELOW", 100)
    # Ray's progress bars replace builtins.print, with which numba cannot compile NN-descent: it must not matter
    import builtins

    monkeypatch.setattr(builtins, "print", lambda *args, **kwargs: None)
    found = nearest(emb, k=5, per_neighbour=1, seed=3)
    assert found.shape == (600, 5)
    assert not (found == np.arange(600)[:, None]).any()
    assert 0 in found[1] and 1 in found[0]
    assert (found // 15 == np.arange(600)[:, None] // 15).mean() > 0.99   # in its own group
    assert np.mean([len(set(a) & set(b)) / 5 for a, b in zip(found, exact)]) > 0.9
    np.testing.assert_array_equal(found, nearest(emb, k=5, per_neighbour=1, seed=3))
    pool = np.arange(0, 600, 2)   # half the rows: the other half search the pool exactly
    in_pool = nearest(emb, pool=pool, k=3, per_neighbour=1)
    assert np.isin(in_pool, pool).all() and not (in_pool == np.arange(600)[:, None]).any()


def test_each_theme_keeps_as_many_paragraphs_past_its_cut() -> None:
    rng = np.random.default_rng(0)
    emb = _unit(rng.standard_normal((300, 16)))
    scores = rng.random((300, 3)).astype(np.float32)
    cuts = np.array([0.3, 0.5, 0.9], dtype=np.float32)
    smoothed = smooth(scores, nearest(emb, k=10, per_neighbour=1))
    assert not np.allclose(smoothed, scores)
    moved = same_count_cuts(scores, smoothed, cuts)
    np.testing.assert_array_equal((smoothed >= moved).sum(axis=0), (scores >= cuts).sum(axis=0))


def test_a_themed_cluster_does_not_hand_its_theme_to_its_unthemed_paragraphs() -> None:
    from model.cluster import ClusterInfo
    from model.label import cluster_vote
    from model.themes import Theme

    themes = [Theme("cloud", "Cloud", "cloud computing")]
    # One cluster of ten: eight paragraphs carry the theme, two (protocol, greetings) show no sign of it.
    own = np.array([[True]] * 8 + [[False]] * 2)
    clusters = np.zeros(10, dtype=int)
    info = ClusterInfo(0, 10, ["cloud"], [0], [], {})
    labels = cluster_vote(own, np.ones_like(own), clusters, [info], themes, np.full((10, 1), 0.5),
                          own.astype(float), np.zeros_like(own), "match the theme")
    assert info.themes == ["cloud"]                   # the cluster is about the theme ...
    assert labels.targets[:8, 0].all()
    assert not labels.targets[8:, 0].any()            # ... but its unthemed paragraphs do not get it
    assert not labels.mask[8:, 0].any()               # and are not learnt from as negatives either
    assert labels.mask[:8, 0].all()


def test_a_cluster_against_a_theme_takes_it_from_its_few_stray_paragraphs() -> None:
    from model.cluster import ClusterInfo
    from model.label import cluster_vote
    from model.themes import Theme

    themes = [Theme("cloud", "Cloud", "cloud computing")]
    # Cluster 0 (ten paragraphs, one stray) is against the theme; cluster 1 carries it clearly, so the theme has
    # enough clear positives for the vote to decide.
    own = np.array([[True]] * 1 + [[False]] * 9 + [[True]] * 12)
    infos = [ClusterInfo(0, 10, ["tourism"], [0], [], {}), ClusterInfo(1, 12, ["cloud"], [10], [], {})]
    clusters = np.array([0] * 10 + [1] * 12)
    named = np.array([[True]] + [[False]] * 21)
    labels = cluster_vote(own, np.ones_like(own), clusters, infos, themes, np.full((22, 1), 0.2),
                          own.astype(float), named, "match the theme")
    assert infos[0].themes == [] and not labels.targets[:10].any()
    assert not labels.mask[0, 0] and labels.mask[1:, 0].all()
    assert "1 of its 10 paragraphs name it" in infos[0].reasons["cloud"]   # the evidence that was outvoted, said


def test_with_fewer_clusters_than_themes_the_clusters_do_not_vote() -> None:
    # Three themes in two clusters: cluster 0 holds 10 paragraphs of each of the three (29% each, so "decided
    # against" every theme) and 4 of none; cluster 1 holds 10 of the first theme. A vote would erase every theme from
    # cluster 0; with fewer clusters than themes each paragraph keeps its own labels and its own clarity.
    themes = [Theme(t, t, f"about {t}") for t in ("a", "b", "c")]
    own = np.zeros((44, 3), dtype=bool)
    for k in range(3):
        own[10 * k:10 * (k + 1), k] = True
    own[34:, 0] = True
    clear = np.ones_like(own)
    clear[0] = False                                  # one cell the mixture is not sure of stays out of training
    clusters = np.array([0] * 34 + [1] * 10)
    args = (np.full((44, 3), 0.5), own.astype(float), np.zeros_like(own), "match the theme")

    def infos(n):
        return [ClusterInfo(i, 0, [], [0], [], {}) for i in range(n)]

    coarse = infos(2)
    two = cluster_vote(own, clear, clusters, coarse, themes, *args)
    assert (two.targets == own).all()
    assert (two.mask == clear).all()
    assert coarse[1].themes == ["a"] and "not applied" in coarse[1].reasons["a"]   # what it carries, said as such
    # the same paragraphs with a third (empty) cluster beside them: the vote runs, and erases the three themes
    three = cluster_vote(own, clear, clusters, infos(3), themes, *args)
    assert not three.targets[:34].any() and three.targets[34:, 0].all()


def test_a_theme_no_cluster_carries_still_learns_from_the_paragraphs_that_name_it() -> None:
    """Issue 15: smart city appears in the seeds only inside lists of areas of work. With too few clear positives
    for a vote to speak for it, a theme keeps the paragraphs that name it as positives, against their clusters."""
    from model.cluster import ClusterInfo
    from model.label import MIN_CLEAR_POSITIVES, cluster_vote
    from model.themes import Theme

    themes = [Theme("cloud", "Cloud", "cloud computing"), Theme("city", "Smart city", "smart city")]
    n = 3 * MIN_CLEAR_POSITIVES
    # One cluster, all about cloud; three of its paragraphs list smart city among the areas of work.
    own = np.zeros((n, 2), dtype=bool)
    own[:, 0] = True
    named = np.zeros_like(own)
    named[:3, 1] = True
    own |= named
    info = ClusterInfo(0, n, ["cloud"], [0], [], {})
    labels = cluster_vote(own, np.ones_like(own), np.zeros(n, dtype=int), [info], themes, np.full((n, 2), 0.5),
                          own.astype(float), named, "match the theme")
    assert info.themes == ["cloud"]                            # the vote is against smart city ...
    assert labels.targets[:3, 1].all() and labels.mask[:3, 1].all()   # ... and still its named paragraphs teach it
    assert not labels.targets[3:, 1].any() and labels.mask[3:, 1].all()
    assert labels.targets[:, 0].all()



def test_a_paragraph_carries_a_theme_by_similarity_only_where_the_mixture_is_sure() -> None:
    from model.cluster import ClusterInfo
    from model.label import SURE, label
    from model.themes import Theme

    # Paragraphs spread evenly from far from the theme to on it: the mixture is unsure about those in between.
    angle = np.linspace(0, np.pi / 2, 200)
    emb = _unit(np.column_stack([np.cos(angle), np.sin(angle)]))
    themes = [Theme("cloud", "Cloud", "cloud computing")]
    one = [ClusterInfo(0, 200, ["words"], [0], [], {})]
    prob = label(emb, ["text"] * 200, themes, _unit([[1, 0]]), np.zeros(200, dtype=int), one).probability[:, 0]
    # A cluster of the likely and as many others, the closest first: more than half likely, under half sure.
    size = int((prob >= 0.5).sum() + (prob >= SURE).sum())
    clusters = np.where(np.arange(200) < size, 0, 1)
    infos = [ClusterInfo(0, size, ["words"], [0], [], {}), ClusterInfo(1, 200 - size, ["other"], [size], [], {})]
    labels = label(emb, ["text"] * 200, themes, _unit([[1, 0]]), clusters, infos)
    prob = labels.probability[:, 0]
    unsure = (prob >= 0.5) & (prob < SURE)
    assert unsure.any()
    np.testing.assert_array_equal(labels.targets[:, 0], prob >= SURE)   # likely but unsure: no theme
    # The vote counts the likely ones: a cluster with half its paragraphs likely about the theme carries it.
    likely_share = [(prob[clusters == c] >= 0.5).mean() for c in (0, 1)]
    sure_share = [(prob[clusters == c] >= SURE).mean() for c in (0, 1)]
    assert sure_share[0] < 0.5 <= likely_share[0] and likely_share[1] < 0.3
    assert [bool(i.themes) for i in infos] == [True, False]


def test_self_training_relabels_only_the_cells_the_first_labelling_left_out() -> None:
    from model.cluster import OUTLIER, ClusterInfo
    from model.label import PseudoLabels, relabel
    from model.themes import Theme

    themes = [Theme("cloud", "Cloud", "cloud computing"), Theme("city", "City", "smart city")]
    n = 4
    previous = PseudoLabels(targets=np.array([[True, False], [False, False], [False, False], [False, False]]),
                            mask=np.array([[True, True], [True, True], [False, False], [False, False]]),
                            similarity=np.zeros((n, 2)), probability=np.zeros((n, 2)),
                            named=np.array([[False, False], [False, False], [False, False], [False, True]]))
    # The classifier disagrees with both confident rows, and passes both themes for the two rows left out.
    scores = np.array([[0.1, 0.9], [0.9, 0.9], [0.95, 0.85], [0.9, 0.1]])
    outliers = np.full(n, OUTLIER)   # no cluster: each paragraph keeps its own labels
    new = relabel(scores, np.full(2, 0.5), outliers, [ClusterInfo(OUTLIER, n, [], [], [], {})], themes, previous)
    np.testing.assert_array_equal(new.targets[:2], previous.targets[:2])   # the confident cells are not overwritten
    assert new.targets[2].tolist() == [True, False]                     # the classifier's best theme only ...
    assert new.targets[3].tolist() == [True, True]                      # ... and any theme the paragraph names


def test_each_article_counts_once_in_the_anchors_refinement() -> None:
    from model.label import refine_anchors

    # Two themes on the x and y axes. Theme x is preferred by one paragraph of article "a" (on x itself) and by
    # seven near-copies of one long article "b" that lean toward z, a subject of its own.
    anchor = _unit([[1, 0, 0], [0, 1, 0]])
    on_theme = _unit([[1, 0, 0.05]])
    long_article = _unit([[1, 0, 0.9]] * 7)
    other = _unit([[0, 1, 0]] * 2)
    emb = np.vstack([on_theme, long_article, other]).astype(np.float32)
    articles = np.array(["a"] + ["b"] * 7 + ["c"] * 2)

    by_paragraph = refine_anchors(emb, anchor)
    by_article = refine_anchors(emb, anchor, articles)
    # Weighted by paragraphs the long article drags the anchor toward z; one vote each leaves it nearer the theme.
    assert by_article[0] @ anchor[0] > by_paragraph[0] @ anchor[0]
    assert by_article[0, 2] < by_paragraph[0, 2]
    # With every paragraph its own article, the two weightings agree.
    np.testing.assert_allclose(refine_anchors(emb, anchor, np.arange(len(emb))), by_paragraph, atol=1e-6)


def test_one_odd_paragraph_far_below_the_rest_makes_no_paragraph_sure_of_a_theme() -> None:
    # Most paragraphs far from the theme, a tenth near it. One more far below them all (a code listing, say) sits in
    # the tail of the wider, high component: it once got probability ~1, and the monotone fix then made all 1,001
    # paragraphs "sure" of the theme.
    rng = np.random.default_rng(0)
    s = np.concatenate([rng.normal(0.2, 0.03, 900), rng.normal(0.35, 0.1, 100)])
    sure = (_mixture_probability(s, 0) >= 0.9).sum()
    odd = _mixture_probability(np.append(s, -0.3), 0)
    assert sure < 200 and (odd >= 0.9).sum() < 200
    assert odd[-1] < 0.1                                   # the odd paragraph itself is not about the theme
    order = np.argsort(np.append(s, -0.3))
    assert (np.diff(odd[order]) >= 0).all()                # a larger similarity never means a smaller probability


def test_a_theme_keyword_counts_among_a_clusters_top_words_only_as_a_whole_word() -> None:
    # "port" is not in "support", "ship" not in "partnership": 40% of the cluster is not enough without a real match
    themes = [Theme("shipping", "Shipping", "Ports, ships and cargo.", keywords=("ship", "port"))]
    own = np.zeros((10, 1), bool)
    own[:4] = True
    for words, given in ((["partnership", "support", "friendship"], False), (["cargo", "port", "cranes"], True)):
        info = ClusterInfo(0, 10, words, [0], [], {})
        cluster_vote(own, np.ones_like(own), np.zeros(10, int), [info], themes, np.zeros((10, 1)),
                     np.zeros((10, 1)), np.zeros((10, 1), bool), "are likely")
        assert (info.themes == ["shipping"]) == given, (words, info.reasons)


def test_a_long_chinese_keyword_counts_among_top_words_that_hold_its_character_pairs() -> None:
    # Cluster keywords of Chinese are runs of two or three characters (terms()), so 智慧城市 is never one of them
    # whole; it is there when all its pairs are (智慧, 慧城, 城市), as in 智慧城 and 慧城市.
    top_words = [["智慧城", "慧城市", "市建设"], ["智慧城", "慧城市", "建设"], ["智慧城", "建设"], ["城市", "智慧"]]
    found = among_top_words(top_words, ["智慧城市", "建设", "智慧城市建设"])
    assert found.tolist() == [[True, True, True], [True, True, False], [False, True, False], [False, False, False]]
    assert among_top_words([["support", "partnership"]], ["port"]).tolist() == [[False]]


def test_a_paragraph_nearer_to_a_themes_counterexamples_does_not_carry_it_by_similarity() -> None:
    from model.cluster import OUTLIER, ClusterInfo
    from model.label import label, unlike_centres

    # One theme on the first axis; its counterexamples lie toward the second. Twenty paragraphs are plainly about the
    # theme, twenty about nothing (third axis), and two sit between the theme and its counterexamples: as near the
    # theme as many a themed paragraph, but nearer still to what the theme file says it is not.
    rng = np.random.default_rng(0)
    themed = _unit(np.column_stack([np.ones(20), 0.3 * rng.random(20), 0.1 * rng.random(20)]))
    unthemed = _unit(np.column_stack([0.1 * rng.random(20), 0.1 * rng.random(20), np.ones(20)]))
    between = _unit([[1.0, 0.9, 0.0], [1.0, 0.95, 0.05]])
    emb = np.vstack([themed, unthemed, between]).astype(np.float32)
    texts = [f"paragraph {i}" for i in range(len(emb))]
    texts[-1] = "a paragraph that names the farm theme"
    # A second theme, on the third axis, has no counterexamples: its labels must not move.
    themes = [Theme("farm", "Farm", "farm produce online", keywords=("farm theme",), counterexamples=("x", "y")),
              Theme("other", "Other", "anything else")]
    anchor = _unit([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    counter = _unit([[0.6, 1.0, 0.0], [0.6, 1.0, 0.1]])
    outliers = np.full(len(emb), OUTLIER)

    def run(unlike):
        infos = [ClusterInfo(OUTLIER, len(emb), [], [], [], {})]
        return label(emb, texts, themes, anchor, outliers, infos, unlike=unlike)

    without = run(None)
    assert without.targets[-2:, 0].all()            # without counterexamples the two in between carry the theme
    unlike = unlike_centres([counter, None], 3)
    np.testing.assert_allclose(np.linalg.norm(unlike, axis=1), [1.0, 0.0], rtol=1e-6)
    with_them = run(unlike)
    assert not with_them.targets[-2, 0]             # nearer to the counterexamples: not by similarity
    assert with_them.targets[-1, 0]                 # but a paragraph that names the theme still carries it
    np.testing.assert_array_equal(with_them.targets[:40], without.targets[:40])   # the rest as before
    np.testing.assert_array_equal(with_them.targets[:, 1], without.targets[:, 1])   # the other theme untouched
    assert without.targets[20:40, 1].all()          # (which its paragraphs do carry)
    assert unlike_centres([None, None], 3) is None  # a theme file without counterexamples changes nothing
    # Counterexamples that cancel out say nothing: that theme goes unguarded, with no NaN.
    cancelled = unlike_centres([np.array([[1.0, 0, 0], [-1.0, 0, 0]]), counter], 3)
    assert np.isfinite(cancelled).all() and not cancelled[0].any() and cancelled[1].any()


def test_self_training_never_votes_away_a_thin_themes_sure_cells() -> None:
    from model.cluster import ClusterInfo
    from model.label import PseudoLabels, relabel

    # Two clusters of ten for two themes: in the first, two paragraphs were surely "world" in the first labelling;
    # the classifier now gives every paragraph "sport", so the second vote (20% world) goes against world there.
    themes = [Theme("world", "World", "world news"), Theme("sport", "Sport", "sport")]
    n = 20
    targets = np.zeros((n, 2), dtype=bool)
    targets[:2, 0] = True
    mask = np.zeros((n, 2), dtype=bool)
    mask[:2] = True
    previous = PseudoLabels(targets=targets, mask=mask, similarity=np.zeros((n, 2)), probability=np.zeros((n, 2)),
                            named=np.zeros((n, 2), dtype=bool))
    scores = np.tile([0.1, 0.9], (n, 1))
    infos = [ClusterInfo(0, 10, [], [], [], {}), ClusterInfo(1, 10, [], [], [], {})]
    new = relabel(scores, np.full(2, 0.5), np.repeat([0, 1], 10), infos, themes, previous)
    assert infos[0].themes == ["sport"]                         # the vote went against world ...
    assert new.targets[:2, 0].all() and new.mask[:2, 0].all()   # ... but its only sure cells keep it, and are learnt
    assert not new.targets[2:, 0].any()
    # A theme with enough clear positives elsewhere (twelve sure ones in a cluster of its own) takes the vote's word.
    n = 32
    targets = np.zeros((n, 2), dtype=bool)
    targets[:2, 0] = targets[20:, 0] = True
    mask = np.zeros((n, 2), dtype=bool)
    mask[:2] = mask[20:] = True
    previous = PseudoLabels(targets=targets, mask=mask, similarity=np.zeros((n, 2)), probability=np.zeros((n, 2)),
                            named=np.zeros((n, 2), dtype=bool))
    scores = np.vstack([np.tile([0.1, 0.9], (20, 1)), np.tile([0.9, 0.1], (12, 1))])
    infos = [ClusterInfo(0, 10, [], [], [], {}), ClusterInfo(1, 10, [], [], [], {}), ClusterInfo(2, 12, [], [], [], {})]
    new = relabel(scores, np.full(2, 0.5), np.repeat([0, 1, 2], [10, 10, 12]), infos, themes, previous)
    assert infos[2].themes == ["world"] and new.targets[20:, 0].all()
    assert not new.targets[:2, 0].any()                         # the two strays are voted away as before
