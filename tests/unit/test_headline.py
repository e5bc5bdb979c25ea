"""The headline check: the README's headline sentences against the verdict table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tardiff.evaluate.downstream.metrics import NO_DIFFERENCE, SAME_SAMPLES
from tardiff.evaluate.reporting.headline import (
    BEGIN,
    END,
    headline,
    headline_problems,
    read_markdown_table,
)
from tardiff.evaluate.reporting.verdict import shown, verdict_markdown, verdict_table

ROOT = Path(__file__).resolve().parents[2]


def test_the_readme_headline_agrees_with_the_committed_verdict_table():
    """The repository's README against ``results/tables/verdict.md`` of the committed run (no
    run committed yet: the headline block must be empty)."""
    verdict = ROOT / "results/tables/verdict.md"
    text = verdict.read_text() if verdict.exists() else None
    problems = headline_problems((ROOT / "README.md").read_text(), text)
    assert not problems, "\n".join(problems)


def _collected():
    """A collected paired table (after the adjustment) of one task."""
    rows = [
        ("tardiff", "conditional", 0.004, -0.010, 0.018, 0.6, NO_DIFFERENCE, True),
        ("tardiff", "real", 0.05, 0.01, 0.09, 0.01, "improves", False),
        ("conditional", "real", 0.06, 0.02, 0.10, 0.002, "improves", False),
        ("cfg", "real", 0.06, 0.02, 0.10, 0.002, "improves", False),
        ("cfg", "conditional", 0.0, 0.0, 0.0, 1.0, SAME_SAMPLES, False),
        ("jitter", "conditional", -0.08, -0.12, -0.04, 0.0001, "worse", False),
        ("tardiff", "class_weight", 0.04, 0.01, 0.07, 0.01, "improves", False),
        ("tardiff", "oversample", 0.03, 0.01, 0.05, 0.02, "improves", False),
        ("conditional", "class_weight", 0.05, 0.02, 0.08, 0.01, "improves", False),
        ("conditional", "oversample", 0.01, -0.01, 0.03, 0.4, NO_DIFFERENCE, False),
        ("cfg", "class_weight", 0.05, -0.02, 0.08, 0.3, NO_DIFFERENCE, False),
        ("jitter", "class_weight", 0.05, 0.02, 0.08, 0.01, "improves", False),
    ]
    columns = ["method", "baseline", "delta", "delta_lo_adj", "delta_hi_adj", "p_holm",
               "verdict_adj", "primary"]  # fmt: skip
    frame = pd.DataFrame(rows, columns=columns)
    return frame.assign(dataset="d", task="t", test_set="external", evaluator="gru",
                        protocol="TSRTR", ratio=1.0, metric="auprc", fraction=1.0)  # fmt: skip


@pytest.fixture()
def verdict_md():
    return "\n".join(verdict_markdown(verdict_table(_collected()))) + "\n"


def _readme(*lines):
    return "\n".join(["# Title", "", BEGIN, *lines, END, "", "More text."])


def test_generated_sentences_pass_and_say_what_the_table_says(verdict_md):
    sentences = headline(read_markdown_table(verdict_md))
    assert sentences == [
        "- **d · t**, primary (external test set): tardiff − conditional, TSRTR α=1 · AUPRC: "
        "no detectable difference, Δ = +0.004 [−0.010, +0.018].",
        "- **d · t** vs real (TSRTR α=1 · AUPRC, external test set, gru, Holm-adjusted): "
        "improves: conditional, tardiff, cfg; worse: none; no detectable difference: none; same "
        "samples: none.",
        "- **d · t** vs conditional (TSRTR α=1 · AUPRC, external test set, gru, Holm-adjusted): "
        "improves: none; worse: jitter; no detectable difference: none; same samples: cfg.",
        "- **d · t** vs the imbalance corrections (TSRTR α=1 · AUPRC, external test set, gru, "
        "Holm-adjusted): improves on both class_weight and oversample: tardiff; on one: "
        "conditional; on neither: cfg.",
    ]
    assert read_markdown_table(verdict_md).equals(shown(verdict_table(_collected())))
    table_line = verdict_md.splitlines()[4]
    readme = _readme("<!-- a comment -->", *sentences, "", table_line)
    assert headline_problems(readme, verdict_md) == []
    reordered = sentences[1].replace("conditional, tardiff, cfg", "cfg, conditional, tardiff")
    assert headline_problems(_readme(sentences[0], reordered), verdict_md) == []


def test_a_sentence_that_disagrees_with_the_table_fails(verdict_md):
    primary, vs_real, vs_conditional, corrections = headline(read_markdown_table(verdict_md))
    claims = [
        (primary.replace("no detectable difference", "improves"), "verdict"),
        (primary.replace("+0.004", "+0.040"), "delta"),
        (primary.replace("external test set", "internal test set"), "test_set"),
        (vs_real.replace("worse: none", "worse: tardiff"), "worse"),
        (vs_conditional.replace("same samples: cfg", "same samples: none"), "same"),
        (corrections.replace("oversample: tardiff", "oversample: tardiff, cfg"), "both"),
    ]
    for claim, field in claims:
        (problem,) = headline_problems(_readme(primary, claim), verdict_md)
        assert f"disagrees on {field} " in problem, problem


def test_unreadable_missing_and_unmarked_headlines_fail(verdict_md):
    primary, vs_real, *_ = headline(read_markdown_table(verdict_md))
    (problem,) = headline_problems(_readme(primary, "TarDiff helps on every task."), verdict_md)
    assert problem.startswith("not a sentence the verdict table can check")
    (problem,) = headline_problems(_readme(vs_real), verdict_md)
    assert problem == "no sentence for the primary row of d · t"
    (problem,) = headline_problems(_readme(primary, "| made | up |"), verdict_md)
    assert problem.startswith("not a line of the verdict table")
    assert headline_problems("no markers", verdict_md)[0].startswith("no headline block")
    assert headline_problems(_readme(), None) == []  # no run yet, no headline
    assert headline_problems(_readme(primary), None) != []
    with pytest.raises(ValueError, match="no Markdown table"):
        read_markdown_table("just a title")
