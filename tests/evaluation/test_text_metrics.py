"""Open-ended metrics: hand-worked values, and agreement with nltk/rouge where installed."""

import math
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medmo_agent.evaluation.text_metrics import bleu, bleu_tokens, open_metrics, rouge, token_prf


def test_bleu_hand_worked():
    # hyp: the left lung (3 tokens), ref: left lung (2): p1 = 2/3, p2 = 1/2, no brevity penalty
    assert bleu("the left lung", "left lung", 1) == pytest.approx(2 / 3)
    assert bleu("the left lung", "left lung", 2) == pytest.approx(math.sqrt(1 / 3))
    # no trigram match: nltk's smoothing-free value, (2/3 * 1/2 * tiny) ** (1/3), not 0
    expected = (2 / 3 * 1 / 2 * sys.float_info.min) ** (1 / 3)
    assert bleu("the left lung", "left lung", 3) == pytest.approx(expected)
    # shorter hypothesis: brevity penalty exp(1 - 2/1)
    assert bleu("lung", "left lung", 1) == pytest.approx(math.exp(-1))
    assert bleu("heart", "left lung", 1) == 0.0


def test_bleu_tokenizer_splits_dots_and_keeps_empties():
    assert bleu_tokens("Yes.") == ["yes", "."]
    assert bleu_tokens("a  b") == ["a", "", "b"]


def test_rouge_hand_worked():
    scores = rouge("the left lung", "left lung")
    assert scores["rouge1"] == pytest.approx(0.8, abs=1e-7)  # p 2/3, r 1
    assert scores["rouge2"] == pytest.approx(2 / 3, abs=1e-7)  # p 1/2, r 1
    assert scores["rougel"] == pytest.approx(0.8, abs=1e-7)
    assert rouge("", "lung") == {"rouge1": 0.0, "rouge2": 0.0, "rougel": 0.0}


def test_token_f1_and_the_permuted_labels():
    assert token_prf("the left lung", "left lung") == pytest.approx((2 / 3, 1.0, 0.8))
    fixed = open_metrics("left lung", "The left lung")
    assert (fixed["precision"], fixed["recall"], fixed["f1"]) == pytest.approx((2 / 3, 1.0, 0.8))
    bug = open_metrics("left lung", "The left lung", compat="medevalkit")
    assert (bug["precision"], bug["recall"], bug["f1"]) == pytest.approx((0.8, 2 / 3, 1.0))
    assert fixed["em"] == 0.0
    assert open_metrics("Left Lung", "left lung")["em"] == 1.0
    assert token_prf("", "lung") == (0.0, 0.0, 0.0)


# Differential check against the libraries MedEvalKit pins (nltk 3.9.1, rouge 1.0.1), when
# they can be imported; the values above are hand-worked and always run.
_words = st.lists(
    st.sampled_from(["lung", "left", "the", "mass", "no", "is", "."]), min_size=1, max_size=8
)


@settings(max_examples=150, deadline=None)
@given(_words, _words)
def test_matches_nltk_and_rouge(pred_words, ref_words):
    nltk_bleu = pytest.importorskip("nltk.translate.bleu_score")
    rouge_lib = pytest.importorskip("rouge")
    import warnings

    pred, ref = " ".join(pred_words), " ".join(ref_words)
    for n in range(1, 5):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = nltk_bleu.sentence_bleu(
                [bleu_tokens(ref)], bleu_tokens(pred), weights=[1 / n] * n
            )
        assert bleu(pred, ref, n) == pytest.approx(expected, rel=1e-12, abs=0)
    try:
        lib = rouge_lib.Rouge().get_scores(pred, ref)[0]
    except ValueError:  # the library refuses text with no words between dots
        assert rouge(pred, ref) == {"rouge1": 0.0, "rouge2": 0.0, "rougel": 0.0}
        return
    ours = rouge(pred, ref)
    assert ours["rouge1"] == pytest.approx(lib["rouge-1"]["f"], abs=1e-12)
    assert ours["rouge2"] == pytest.approx(lib["rouge-2"]["f"], abs=1e-12)
    assert ours["rougel"] == pytest.approx(lib["rouge-l"]["f"], abs=1e-12)
