"""Label paragraphs and clusters with the user's themes, from the theme file alone (no hand labels).

1. Each theme's anchor is the mean embedding of its label, description, examples and keywords; it is then
   moved toward the paragraphs that most clearly prefer it (one prototype-refinement step), which adapts a
   one-line description to the corpus's own wording. Each article counts once there, however many of its
   paragraphs prefer the theme (mission dev paragraphs 0.836 -> 0.841, BBC and BBC Sport +0.04 and +0.14).
2. Each paragraph's similarity to each anchor is averaged with that of its ten nearest paragraphs (at most one
   neighbour per hundred paragraphs, so a small corpus is left as it is).
3. For each theme, a two-component Gaussian mixture over all paragraphs' similarities to its anchor separates
   "about this theme" from the rest, so each theme gets its own calibrated cut and a paragraph may pass several
   cuts or none. A paragraph carries a theme by its similarity only where the mixture is sure of it (probability
   at least 0.9, the bar of a clear cell in step 5): "none" is a real answer, and on a small corpus such as the
   seeds, two thirds of which carry no theme, the mixture calls much of the protocol "more likely than not" about
   some theme. A theme must also be among a paragraph's two closest and within 0.05 of the closest, and a paragraph
   nearer to the centre of the theme's counterexamples (the theme file's texts on a neighbouring subject) than to
   the theme's own anchor (as the user wrote it: unrefined, the paragraph's own embedding, not averaged over
   neighbours) does not carry it by similarity (mission dev paragraphs 0.846 -> 0.863 over nine seeds). A paragraph
   that names a theme (one of its keywords) carries it whatever its similarity: as one item in a list of areas of
   work too.
4. A cluster carries a theme when at least half its paragraphs are more likely than not about it (probability
   0.5 in step 3; or 30% with the theme's keywords among the cluster's top keywords). A decided cluster (at least
   70% or at most 30% of its paragraphs carry the theme) takes a theme from the paragraphs that carry it against
   the vote, but never gives a theme to a paragraph that shows no sign of it; in a split cluster, and outside any
   cluster, a paragraph keeps its own. A theme with few clear positives (step 5) keeps every paragraph that names
   it, whatever the vote: a theme that no cluster carries is still learnt. Where the clusterer found fewer clusters
   than there are themes (a small corpus of short texts), no cluster votes: each paragraph keeps its own labels, clear
   where the mixture is sure, and a thin theme learns from them all as in step 5 (300 HuffPost headlines, 8 themes,
   2 clusters: accuracy 0.13 -> 0.77).
5. Training keeps only the confident cells: the cluster and the paragraph agree, and the vote is clear.
   The theme file's own texts (label, description, examples) join the training set as labelled rows.
6. Self-training: the first classifier scores every paragraph; the scores are averaged over neighbours as in
   step 2, with each theme's threshold moved so that as many paragraphs pass it. The cells that step 5 kept
   keep their labels; every other cell takes the classifier's word: its best theme where that passes the cut,
   and any theme the paragraph names. The same cluster vote runs over these labels, and may overturn the cells
   step 5 kept, except that a theme it leaves with fewer than MIN_CLEAR_POSITIVES training positives keeps the
   positives step 5 was sure of (on a sample of 100 AG News texts it had erased World: 0.58 -> 0.75). A second
   classifier learns from these labels. Relabelling every cell let the first classifier's errors overwrite the
   confident labels they came from (HuffPost-41, 41 themes: 0.350 with no self-training, 0.339 with it).

Measured (python benchmarks/accuracy.py, seed 0): self-training took AG News 0.856 -> 0.860; the neighbours in
self-training 0.863 -> 0.869, and in step 2 as well 0.869 -> 0.879 (BBC 0.957 -> 0.960).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.mixture import GaussianMixture

from .cluster import OUTLIER, UMAP_EXACT_BELOW, ClusterInfo
from .corpus import UNSPACED_RUN, character_pairs
from .themes import Theme, keyword_hits


MIN_CLEAR_POSITIVES = 10
SURE = 0.9                   # the mixture's probability at which a cell is clear and a similarity gives a theme
SECOND_THEME_MARGIN = 0.05   # cosine: a second theme must be nearly as close as the first
NEIGHBOURS = 10              # how many similar paragraphs vote on a paragraph's similarities and scores,
PER_NEIGHBOUR = 100          # but at most one per hundred paragraphs of the corpus
EXACT_BELOW = UMAP_EXACT_BELOW   # from this many paragraphs, neighbours by NN-descent, as UMAP's own


@dataclass
class PseudoLabels:
    targets: np.ndarray      # (n, K) bool: the theme labels the classifier learns
    mask: np.ndarray         # (n, K) bool: the confident cells it trains on
    similarity: np.ndarray   # (n, K) cosine to the refined anchors, averaged over neighbours
    probability: np.ndarray  # (n, K) the mixture's probability that the paragraph is about the theme
    named: np.ndarray        # (n, K) bool: the paragraph names the theme (one of its keywords)
    unlike: np.ndarray | None = None   # (n, K) bool: more likely than not about the theme by similarity, but
    #                                    nearer to its counterexamples, so not given it (None: no counterexamples)


def anchors(theme_prompt_embeddings: list[np.ndarray]) -> np.ndarray:
    rows = [e.mean(axis=0) for e in theme_prompt_embeddings]
    a = np.vstack(rows)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def unlike_centres(counterexample_embeddings: list[np.ndarray | None], dim: int) -> np.ndarray | None:
    """(K, dim) the unit centre of each theme's counterexamples, a zero row for a theme without any; None where no
    theme has any."""
    if all(e is None or len(e) == 0 for e in counterexample_embeddings):
        return None
    centres = np.zeros((len(counterexample_embeddings), dim), dtype=np.float32)
    for k, e in enumerate(counterexample_embeddings):
        mean = e.mean(axis=0) if e is not None and len(e) else np.zeros(dim)
        if np.linalg.norm(mean) > 0:   # counterexamples that cancel out say nothing: the theme goes unguarded
            centres[k] = mean / np.linalg.norm(mean)
    return centres


def nearer_unlike(embeddings: np.ndarray, anchor: np.ndarray, unlike: np.ndarray | None) -> np.ndarray:
    """(n, K) bool: the paragraph is nearer to the theme's counterexamples (unlike_centres()) than to its anchor;
    never for a theme without counterexamples."""
    if unlike is None:
        return np.zeros((len(embeddings), len(anchor)), dtype=bool)
    has = np.linalg.norm(unlike, axis=1) > 0
    return ((embeddings @ unlike.T) > (embeddings @ anchor.T)) & has


def refine_anchors(embeddings: np.ndarray, anchor: np.ndarray, articles: np.ndarray | None = None) -> np.ndarray:
    """Move each anchor halfway toward the centre of the paragraphs that prefer it most clearly.

    articles: each paragraph's article (default: each its own). The centre is the mean of each article's mean, one
    vote an article: refinement adapts a theme to the corpus's wording of it, and one long article on a neighbouring
    subject must not pull the theme onto that subject. In the seeds, seven of the nine paragraphs that prefer
    poverty alleviation most clearly are one article's on Jack Ma's charity for rural teachers."""
    sim = embeddings @ anchor.T
    top = sim.argmax(axis=1)
    ordered = np.sort(sim, axis=1)
    margin = ordered[:, -1] - (ordered[:, -2] if sim.shape[1] > 1 else 0)
    refined = anchor.copy()
    for k in range(anchor.shape[0]):
        idx = np.flatnonzero(top == k)
        if len(idx) == 0:
            continue
        clear = idx[np.argsort(-margin[idx])][: max(1, len(idx) // 2)]
        weight = np.ones(len(clear))
        if articles is not None:
            _, article = np.unique(articles[clear], return_inverse=True)
            weight = 1.0 / np.bincount(article)[article]
        centre = weight @ embeddings[clear]
        refined[k] = anchor[k] + centre / np.linalg.norm(centre)
    return refined / np.linalg.norm(refined, axis=1, keepdims=True)


def _mixture_probability(s: np.ndarray, seed: int) -> np.ndarray:
    """P(high component | similarity) from a two-component 1-D Gaussian mixture."""
    if len(s) < 4 or np.ptp(s) < 1e-6:
        return (s >= np.median(s)).astype(float)
    gm = GaussianMixture(2, random_state=seed).fit(s[:, None])
    means = gm.means_.ravel()
    high = int(np.argmax(means))
    p = gm.predict_proba(s[:, None])[:, high]
    # A larger similarity can never mean a smaller probability. Where one component is wider, it owns both far tails:
    # a wide high component the far low one (one odd paragraph far below the rest, such as a code listing, would
    # be "sure" of the theme), a wide low component the far high one. So below the low component's mean each
    # probability is at most those above it, and then each at least those below it.
    order = np.argsort(s)
    ranked = p[order]
    tail = int(np.searchsorted(s[order], means.min(), side="right"))
    ranked[:tail] = np.minimum.accumulate(ranked[:tail][::-1])[::-1]
    p[order] = np.maximum.accumulate(ranked)
    return p


def label(embeddings: np.ndarray, texts: list[str], themes: list[Theme], anchor: np.ndarray,
          clusters: np.ndarray, infos: list[ClusterInfo], seed: int = 0,
          neighbours: np.ndarray | None = None, articles: np.ndarray | None = None,
          unlike: np.ndarray | None = None) -> PseudoLabels:
    """Pseudo-labels for every paragraph; fills each ClusterInfo's themes and reasons.

    neighbours: from nearest(); each paragraph's similarities are averaged with theirs (None: not at all).
    articles: each paragraph's article, so that each article counts once in the anchors' refinement.
    unlike: (K, dim) the centre of each theme's counterexamples (a zero row where it has none)."""
    k_count = len(themes)
    hits = keyword_hits(texts, [t.keywords for t in themes])
    refined = refine_anchors(embeddings, anchor, articles)
    sim = smooth(embeddings @ refined.T, neighbours)
    prob = np.column_stack([_mixture_probability(sim[:, k], seed) for k in range(k_count)])
    rank = np.argsort(np.argsort(-sim, axis=1), axis=1)  # 0 = the paragraph's closest theme
    near_top = sim >= sim.max(axis=1, keepdims=True) - SECOND_THEME_MARGIN
    # A paragraph that names a theme (a keyword) carries it, as one item of a list of areas of work too.
    candidate = (rank < 2) & near_top
    # A paragraph nearer to what the theme file says a theme is not (its counterexamples' centre) than to the theme
    # itself does not carry it by similarity (both as the user wrote them: the unrefined anchor, no neighbours).
    unlike_it = nearer_unlike(embeddings, anchor, unlike)
    guarded = candidate & unlike_it & (prob >= 0.5) & ~hits   # what the guard took from the vote (for clusters.md)
    candidate &= ~unlike_it
    own = (candidate & (prob >= SURE)) | hits
    likely = (candidate & (prob >= 0.5)) | hits   # what the cluster vote counts

    clear = (prob >= SURE) | (prob <= 1 - SURE)
    return cluster_vote(own, clear, clusters, infos, themes, sim, prob, hits, "are likely to match the theme",
                        likely, guarded if unlike is not None else None)


def among_top_words(top_words: list[list[str]], phrases: list[str]) -> np.ndarray:
    """(clusters, phrases) bool: the phrase is one of a cluster's top words or phrases, or a whole part of one ("port"
    is not in "support"). A phrase in an unspaced script (Chinese) longer than three characters, which no top word is
    (terms() reads such text as pairs of characters, and the cluster keywords join them into runs of three at most),
    is there when each of its pairs of characters is."""
    joined = ["; ".join(words) for words in top_words]
    found = keyword_hits(joined, [[phrase] for phrase in phrases])
    for j, phrase in enumerate(phrases):
        pairs = character_pairs(phrase) if UNSPACED_RUN.fullmatch(phrase) else []
        if len(pairs) > 2:   # four characters or more
            found[:, j] = keyword_hits(joined, [[pair] for pair in pairs]).all(axis=1)
    return found


def too_few_clusters(infos: list[ClusterInfo], themes: list[Theme]) -> bool:
    """Fewer clusters (outliers aside) than themes: the clusters cannot stand for the themes."""
    return sum(info.id != OUTLIER for info in infos) < len(themes)


def nearest(embeddings: np.ndarray, pool: np.ndarray | None = None, k: int = NEIGHBOURS,
            per_neighbour: int = PER_NEIGHBOUR, seed: int = 0, chunk: int = 1024) -> np.ndarray:
    """(n, k') row numbers of each paragraph's most similar paragraphs in `pool` (cosine, unit rows; default all),
    never itself: k of them, but at most one per `per_neighbour` paragraphs of the pool (k' may be 0).

    Near neighbours vote on the topic that a single paragraph's words may miss. They must stay a small share of
    the corpus: on the seeds (88 paragraphs) ten of them were a ninth of it and blurred the themes.

    Searched as UMAP searches: exactly in a pool of fewer than EXACT_BELOW paragraphs, by NN-descent in a larger
    one (20k BBC paragraphs, profiled: the labelling stage 7.2 s -> 1.6 s, 97.5% of the exact ten found).
    Paragraphs outside the pool are compared with all of it."""
    pool = np.arange(len(embeddings)) if pool is None else pool
    k = max(0, min(k, len(pool) // per_neighbour, len(pool) - 1))
    found = np.zeros((len(embeddings), k), dtype=np.int64)
    if k == 0:
        return found
    in_pool = np.full(len(embeddings), -1)
    in_pool[pool] = np.arange(len(pool))
    search = np.arange(len(embeddings))
    if len(pool) >= EXACT_BELOW:
        graph = _descent(embeddings[pool], k, seed)
        found[pool] = pool[graph]
        # exactly: the paragraphs outside the pool, and any for which NN-descent found too few (-1)
        search = np.union1d(np.flatnonzero(in_pool < 0), pool[(graph < 0).any(axis=1)])
    ref = embeddings[pool]
    for start in range(0, len(search), chunk):
        rows = search[start:start + chunk]
        sim = embeddings[rows] @ ref.T
        own = in_pool[rows] >= 0
        sim[np.flatnonzero(own), in_pool[rows][own]] = -np.inf   # a paragraph is not its own neighbour
        found[rows] = pool[np.argpartition(-sim, k - 1, axis=1)[:, :k]]
    return found


def _descent(vectors: np.ndarray, k: int, seed: int) -> np.ndarray:
    """(n, k) each row's k nearest other rows by NN-descent (pynndescent, with UMAP's own settings), seeded; -1
    where it found too few."""
    from .cluster import builtin_print, import_umap

    with builtin_print():
        import_umap()   # numba keeps the compiled search on disk, beside UMAP's
        from umap.umap_ import nearest_neighbors

        idx = nearest_neighbors(vectors, k + 1, "cosine", {}, False, np.random.RandomState(seed), n_jobs=1)[0]
    mine = idx == np.arange(len(vectors))[:, None]
    # Each row lists itself first, unless an identical row came before it; where it is missing, drop the farthest.
    mine[~mine.any(axis=1), -1] = True
    return idx[~mine].reshape(len(vectors), k)


def smooth(values: np.ndarray, neighbours: np.ndarray | None) -> np.ndarray:
    """Each row of values, half its own and half the mean over its neighbours' rows (unchanged without any)."""
    if neighbours is None or neighbours.shape[1] == 0:
        return values
    return (values + values[neighbours].mean(axis=1)) / 2


def same_count_cuts(before: np.ndarray, after: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Thresholds for the smoothed scores `after` that let as many paragraphs pass each theme as `before` did.

    Without this, averaging spreads each theme to its neighbours' neighbours."""
    passing = (before >= thresholds).mean(axis=0)
    return np.array([np.quantile(after[:, j], 1 - rate) if rate > 0 else thresholds[j]
                     for j, rate in enumerate(passing)], dtype=np.float32)


def relabel(scores: np.ndarray, thresholds: np.ndarray, clusters: np.ndarray, infos: list[ClusterInfo],
            themes: list[Theme], previous: PseudoLabels) -> PseudoLabels:
    """Self-training: the same cluster vote, over the labels the first classifier gives the cells that the first
    labelling left out (`previous.mask` false); the cells it learnt from go into the vote with their own labels.
    The vote may overturn them, except that a theme it leaves with fewer than MIN_CLEAR_POSITIVES training
    positives (after the vote's own rule for thin themes) keeps those it was sure of (100 AG News texts: 0.58 ->
    0.75 on the sample where the vote had erased a theme; the panel unchanged). With more than one round,
    `previous` is the round before's labels.

    The classifier adds at most its best theme to a paragraph (and any theme the paragraph names): its second
    best is where its own errors gather (AG News 0.879 -> 0.881 and HuffPost-41 0.347 -> 0.348 against the two
    best within 0.8 of each other)."""
    rows, best = np.arange(len(scores)), scores.argmax(axis=1)
    passed = np.zeros_like(scores, dtype=bool)
    passed[rows, best] = scores[rows, best] >= thresholds[best]
    own = np.where(previous.mask, previous.targets, passed | previous.named)
    clear = previous.mask | (scores >= 0.8) | (scores <= 0.2)
    out = cluster_vote(own, clear, clusters, infos, themes, previous.similarity, previous.probability,
                       previous.named, "score past the theme's cut", unlike=previous.unlike)
    # The vote runs over the cells the first labelling was sure of as well, and may go against them: a theme it
    # leaves with few training positives keeps its sure ones, as it keeps the paragraphs that name it (a cluster of
    # 23 of 100 AG News texts held 16 World texts, of which only the six sure ones carried World, 26%: the second
    # vote took them, and World was left with no training row at all). A theme with enough takes the vote's word.
    thin = (out.mask & out.targets).sum(axis=0) < MIN_CLEAR_POSITIVES
    sure = previous.mask & previous.targets & thin
    out.targets |= sure
    out.mask |= sure
    return out


def cluster_vote(own: np.ndarray, clear: np.ndarray, clusters: np.ndarray, infos: list[ClusterInfo],
                 themes: list[Theme], sim: np.ndarray, prob: np.ndarray, named: np.ndarray,
                 evidence: str, likely: np.ndarray | None = None, unlike: np.ndarray | None = None) -> PseudoLabels:
    """Give each cluster the themes most of its paragraphs carry, and keep the cells where all agree.

    likely: what the vote counts, where it is wider than what the paragraphs carry (default: own).
    unlike: (n, K) the paragraphs that look like a theme but are nearer to its counterexamples (the reasons count
    them).

    A decided cluster takes a theme from the few paragraphs that carry it against the vote, but it never hands a
    theme to a paragraph that shows no sign of it: a protocol paragraph in a cluster about cloud computing stays
    without a theme, and is not learnt from either way."""
    targets = own.copy()
    clear = clear.copy()
    handed = np.zeros_like(own)
    # With fewer clusters than themes, some cluster holds two themes or more: a vote against the smaller one would
    # erase it from every paragraph (300 HuffPost headlines in 2 clusters for 8 themes: 7 themes erased, accuracy
    # 0.13), so the clusters do not vote, and each paragraph's labels and their clarity are its own (the thin-theme rule
    # below still applies). clusters.md still says what each cluster mostly carries, and that it was not applied.
    coarse = too_few_clusters(infos, themes)
    found = among_top_words([info.keywords for info in infos], [w for t in themes for w in t.keywords])
    first = np.cumsum([0] + [len(t.keywords) for t in themes])
    for n, info in enumerate(infos):
        idx = np.flatnonzero(clusters == info.id)
        if info.id == OUTLIER:
            continue
        info.themes, info.reasons = [], {}
        share = (own if likely is None else likely)[idx].mean(axis=0)
        for k, theme in enumerate(themes):
            matched = [w for w, hit in zip(theme.keywords, found[n, first[k]:first[k + 1]]) if hit]
            given = share[k] >= 0.5 or (share[k] >= 0.3 and bool(matched))
            why = f"{share[k]:.0%} of its paragraphs {evidence} (mean similarity {sim[idx, k].mean():.2f})"
            if named[idx, k].any():
                why += f"; {int(named[idx, k].sum())} of its {len(idx)} paragraphs name it"
            if matched:
                why += f"; theme keywords among its top words: {', '.join(matched[:5])}"
            guarded = 0 if unlike is None else int(unlike[idx, k].sum())
            if guarded:
                why += f"; {guarded} of its {len(idx)} paragraphs look like it but are nearer to its counterexamples"
            if given:
                info.themes.append(theme.id)
                info.reasons[theme.id] = why + ("; not applied to its paragraphs: fewer clusters than themes, so each "
                                                "keeps its own" if coarse else "")
            elif share[k] >= 0.15 or named[idx, k].any() or guarded:
                info.reasons[theme.id] = "not given: only " + why
        # Only a decided cluster overrides its paragraphs; in a split one each paragraph keeps its own label.
        decided = np.zeros_like(share, dtype=bool) if coarse else (share >= 0.7) | (share <= 0.3)
        given = np.array([t.id in info.themes for t in themes])
        targets[idx] = own[idx] & ~(decided & ~given)
        handed[idx] = decided & given & ~own[idx]
        if not coarse:
            clear[idx] = decided
    agree = (targets == own) & ~handed
    mask = agree & clear
    # On a small corpus few cells are clear-cut; a theme with too few clear positives learns from agreement alone,
    # and from every paragraph that names it, whatever its cluster says: the theme file's own words are the best
    # evidence such a theme has (in the seeds, poverty alleviation's named paragraphs sat in clusters that voted it
    # away in one training seed of nine, and it was left with no training row at all).
    thin = (mask & targets).sum(axis=0) < MIN_CLEAR_POSITIVES
    mask[:, thin] = agree[:, thin] | named[:, thin]
    targets[:, thin] |= named[:, thin]
    return PseudoLabels(targets, mask, sim, prob, named, unlike)
