"""The speed benchmark's parts (benchmarks/speed/): each renders its block from a result, and a part's block goes
between its own markers inside the speed section, leaving the other parts' blocks alone."""

from __future__ import annotations

import sys

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks" / "speed"))
import embedders  # noqa: E402
import end_to_end  # noqa: E402
import tagging  # noqa: E402
import timing  # noqa: E402
import training  # noqa: E402
import vs_bertopic  # noqa: E402

CFG = {"quick": True}
STAGES = {"load embedder": 1.0, "embed": 6.0, "reduce": 1.0, "classifier": 2.0}
RESULTS = {
    tagging: {"articles": 3, "paragraphs": 9, "train_articles": 5, "train_paragraphs": 20, "batch_size": 64,
              "torch_threads": 2, "max_words": 181, "tag_batch": 256, "same_paragraphs": True, "repeats": 1,
              "times": {"tag_many": [2.0], "raw encode": [1.9]}, "train_default": STAGES,
              "pieces": {"clean and split": 0.01, "normalise": 0.001, "classifier": 0.01, "results": 0.01}},
    training: {"sizes": {"400": {"size": 400, "articles": 80, "paragraphs": 401, "copies": 0, "clusters": 9,
                                 "seconds": STAGES, "peak_rss_mb": 900.0, "sampled_peak_mb": 880.0,
                                 "stage_at_peak": "embed", "rss_before_mb": 170.0}}},
    vs_bertopic: {"paragraphs": 401, "ours": STAGES, "ours_runs": [STAGES, STAGES], "ours_clusters": 9,
                  "umap_compile_s": 20.0, "bertopic_seconds": 6.0, "bertopic_umap": 4.0, "bertopic_topics": 8},
    end_to_end: {"paragraphs": 401, "spec": "onnx:all-MiniLM-L6-v2", "ours_seconds": 12.0, "ours": STAGES,
                 "ours_clusters": 9, "umap_compile_s": 20.0, "bertopic_seconds": 30.0, "bertopic_umap": 4.0,
                 "bertopic_topics": 8, "peak_rss_mb": 900.0},
    embedders: {"static": {"articles": 3, "paragraphs": {"tag_many": 9, "static tag_many": 8}, "train_articles": 5,
                           "repeats": 1, "times": {"tag_many": [2.0], "static tag_many": [0.05]},
                           "static_spec": "static:all-MiniLM-L6-v2", "train_default": STAGES,
                           "train_static": STAGES},
                "stream": {"n": 100, "seconds": 0.5, "sentences": 50, "samples": [(0, 200.0, 0.0), (50, 201.0, 0.2),
                                                                                  (100, 201.0, 0.5)]}},
}


def test_every_part_renders_its_targets_and_tables() -> None:
    for part, result in RESULTS.items():
        text = timing.block(part, result, CFG)
        assert text.startswith(f"### {part.TITLE}\n") and "| check | target | measured | met |" in text, part.NAME
    assert "0.95x" in timing.block(tagging, RESULTS[tagging], CFG)   # raw encode / tag_many
    assert "**40x**" in timing.block(embedders, RESULTS[embedders], CFG)
    assert "**2.50x**" in timing.block(end_to_end, RESULTS[end_to_end], CFG)   # 30 s against 12


def test_the_static_and_default_taggers_are_also_set_against_a_raw_fp32_encode() -> None:
    # Issue 13's targets take a raw fp32 SentenceTransformer.encode as the yardstick: static >= 50x, default >= 2x.
    static = dict(RESULTS[embedders]["static"], times={"tag_many": [2.0], "static tag_many": [0.05],
                                                       "raw fp32 encode": [3.0]})
    text = timing.block(embedders, dict(RESULTS[embedders], static=static), CFG)
    assert "| static-embedder tagger vs a raw fp32 `SentenceTransformer.encode` of the default's paragraphs | " \
           ">= 50x (issue 13) | 60x | **yes** |" in text
    assert "the default tagger vs a raw fp32 encode: 1.50x" in text
    text = timing.block(tagging, RESULTS[tagging], CFG)   # tag_many 2.0 s, raw encode 1.9 s
    assert "| default tag_many vs raw fp32 `SentenceTransformer.encode`, same paragraphs | >= 2x (issue 13) | " \
           "0.95x | **NO** |" in text


def test_a_failed_part_says_so() -> None:
    assert "**Part `tagging` failed:** worker tagging exited" in timing.block(
        tagging, {"error": "worker tagging exited with code 1"}, CFG)


def test_a_part_rewrites_only_its_own_block(tmp_path) -> None:
    md = tmp_path / "BENCHMARKS.md"
    md.write_text("# Benchmarks\n\n<!-- speed:start -->\n## Speed\n\n<!-- speed-tagging:start -->\nold tagging\n"
                  "<!-- speed-tagging:end -->\n\n<!-- speed-training:start -->\nold training\n"
                  "<!-- speed-training:end -->\n<!-- speed:end -->\n", encoding="utf-8")
    timing.write_section(md, "speed-tagging", timing.block(tagging, RESULTS[tagging], CFG))
    text = md.read_text(encoding="utf-8")
    assert "old tagging" not in text and tagging.TITLE in text and "old training" in text
    assert text.index("<!-- speed:start -->") < text.index(tagging.TITLE) < text.index("<!-- speed:end -->")
