"""Verification metrics on synthetic scores whose answers are known by hand."""

from __future__ import annotations

import numpy as np
import pytest

from alob_common.pairs import contiguous_folds
from alob_common.verification import (
    FOLDS_AS_GIVEN,
    VerificationError,
    best_threshold,
    cosine_scores,
    evaluate_pairs,
    fold_accuracy,
    tar_at_far,
    verification_folds,
)


def test_contiguous_folds_are_lfw_blocks():
    np.testing.assert_array_equal(contiguous_folds(6000), np.arange(6000) // 600)
    assert np.bincount(contiguous_folds(848)).tolist() == [85] * 8 + [84] * 2


def _lfw_like(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """10 folds of 300 genuine + 300 impostor pairs, perfectly separable at 0.45."""
    folds = np.repeat(np.arange(10), 600)
    same = np.tile(np.r_[np.ones(300, bool), np.zeros(300, bool)], 10)
    scores = np.where(same, rng.uniform(0.5, 1.0, 6000), rng.uniform(-1.0, 0.4, 6000))
    return scores, same, folds


def test_fold_accuracy_hand_known():
    scores, same, folds = _lfw_like(np.random.default_rng(0))
    assert fold_accuracy(scores, same, folds).mean == 1.0
    # six impostors of fold 3 score 0.9: only fold 3 loses them (1 - 6/600), the threshold
    # learnt on the other folds stays between 0.4 and 0.5
    impostors_fold3 = np.flatnonzero((folds == 3) & ~same)[:6]
    scores[impostors_fold3] = 0.9
    result = fold_accuracy(scores, same, folds)
    assert result.accuracies == [1.0] * 3 + [0.99] + [1.0] * 6
    assert result.mean == pytest.approx(0.999)
    assert result.std == pytest.approx(np.std([1.0] * 9 + [0.99]))
    assert all(0.4 < t < 0.5 for t in result.thresholds)


def test_best_threshold_midpoint():
    threshold, accuracy = best_threshold(np.array([0.1, 0.2, 0.6, 0.8]), np.array([0, 0, 1, 1], bool))
    assert threshold == pytest.approx(0.4) and accuracy == 1.0


def _tar_case() -> tuple[np.ndarray, np.ndarray]:
    """3,000 impostors (four of them high: 0.9, 0.85, 0.8, 0.7) and 3,000 genuine pairs
    (1,000 each at 0.95, 0.75 and 0.5)."""
    impostors = np.r_[np.linspace(-1.0, 0.0, 2996), [0.9, 0.85, 0.8, 0.7]]
    genuine = np.repeat([0.95, 0.75, 0.5], 1000)
    return np.r_[genuine, impostors], np.r_[np.ones(3000, bool), np.zeros(3000, bool)]


@pytest.mark.parametrize("convention", ["roc", "order"])
def test_tar_at_far_allows_at_most_far_times_n_false_accepts(convention):
    scores, same = _tar_case()
    # FAR 1e-3 of 3,000 impostors = 3 false accepts: accepting the 0.75 genuines admits exactly
    # the three impostors above 0.75, the one at 0.7 stays out -> TAR 2/3
    assert tar_at_far(scores, same, 1e-3, convention)[0] == pytest.approx(2 / 3)
    # FAR 1e-4 allows no false accept: only the 0.95 genuines pass -> TAR 1/3
    assert tar_at_far(scores, same, 1e-4, convention)[0] == pytest.approx(1 / 3)
    # two false accepts allowed (FAR 2/3000): 0.85 < t <= 0.9 is not enough for 0.75s -> 1/3
    assert tar_at_far(scores, same, 2 / 3000, convention)[0] == pytest.approx(1 / 3)


def test_tar_fold_convention():
    scores, same, folds = _lfw_like(np.random.default_rng(1))
    tar, std = tar_at_far(scores, same, 1e-3, "fold", folds)
    assert tar == 1.0 and std == 0.0
    rng = np.random.default_rng(2)
    noisy = np.where(same, rng.normal(0.5, 0.1, 6000), rng.normal(0.0, 0.1, 6000))
    tar_fold, _ = tar_at_far(noisy, same, 1e-3, "fold", folds)
    tar_roc, _ = tar_at_far(noisy, same, 1e-3, "roc")
    assert abs(tar_fold - tar_roc) < 0.05  # same quantity, estimated two ways
    with pytest.raises(ValueError):
        tar_at_far(noisy, same, 1e-3, "nope")


def test_cosine_scores_and_report_dict():
    a = np.array([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]])
    b = np.array([[2.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    np.testing.assert_allclose(cosine_scores(a, b), [1.0, 0.0, 0.0])
    scores, same, folds = _lfw_like(np.random.default_rng(3))
    report = evaluate_pairs(scores, same, folds)
    assert report["accuracy"] == 1.0 and report["folds"] == 10 and report["impostor"] == 3000
    assert report["tar_at_far"]["0.001"]["false_accepts_allowed"] == 3


def test_pairs_txt_folds_match_lfw_view2(lfw_pairs, lfw_dir):
    """The standard pairs.txt gives 10 contiguous folds of 300 genuine then 300 impostor pairs."""
    from alob_common.pairs import missing_images, pair_table

    table = pair_table(lfw_pairs, lfw_dir)
    assert len(table) == 6000
    np.testing.assert_array_equal(table.fold.to_numpy(), contiguous_folds(6000))
    for k in range(10):
        fold = table[table.fold == k]
        assert fold.same.iloc[:300].all() and not fold.same.iloc[300:].any()
    assert missing_images(table) == []


def test_pairs_formats(tmp_path):
    from alob_common.pairs import PairsError, pair_table

    (tmp_path / "mfr2.txt").write_text("Ann 1 2\nAnn 1 Bob 3\n")
    table = pair_table(tmp_path / "mfr2.txt", tmp_path / "imgs", fmt="mfr2")
    assert table.path1.tolist() == [str(tmp_path / "imgs/Ann/Ann_0001.png")] * 2
    assert table.path2.tolist()[1] == str(tmp_path / "imgs/Bob/Bob_0003.png")
    assert table.same.tolist() == [True, False]
    (tmp_path / "set").mkdir()
    (tmp_path / "set" / "pairs.csv").write_text("path1,path2,same,fold\na.jpg,b.jpg,1,0\nc.jpg,d.jpg,0,1\n")
    csv = pair_table(tmp_path / "set")
    assert csv.same.tolist() == [True, False] and csv.path1[0] == str(tmp_path / "set" / "a.jpg")
    (tmp_path / "bad.txt").write_text("10 300\nAnn x 2\n")
    with pytest.raises(PairsError, match="bad.txt:2"):
        pair_table(tmp_path / "bad.txt", tmp_path)


def test_headerless_pair_list_folds_match_kfold(tmp_path):
    """MFR2-style lists (no header) are cut like sklearn's KFold: the first len % 10 folds longer."""
    from alob_common.pairs import pair_table

    lines = [f"P{i} 1 2" if i % 2 else f"P{i} 1 Q{i} 2" for i in range(848)]
    (tmp_path / "pairs.txt").write_text("\n".join(lines) + "\n")
    table = pair_table(tmp_path / "pairs.txt", tmp_path, fmt="mfr2")
    np.testing.assert_array_equal(table.fold.to_numpy(), contiguous_folds(848))


def test_one_fold_is_recut_by_class_and_the_rule_is_stated():
    same = np.r_[np.ones(300, bool), np.zeros(300, bool)]  # a pairs.txt with header '1 300'
    folds, rule = verification_folds(same, np.zeros(600, int))
    assert rule.startswith("the pair list has one fold: re-cut into 10 folds")
    for k in range(10):  # the k-th block of 30 genuine and of 30 impostor pairs
        assert (folds[:300] == k).sum() == 30 and (folds[300:] == k).sum() == 30
    scores = np.where(same, 0.8, 0.1)
    report = evaluate_pairs(scores, same, np.zeros(600, int), fars=(1e-2,), convention="fold")
    assert report["folds"] == 10 and report["accuracy"] == 1.0 and report["fold_rule"] == rule
    small = np.r_[np.ones(3, bool), np.zeros(7, bool)]
    assert len(np.unique(verification_folds(small, np.zeros(10, int))[0])) == 3  # k = the smaller class
    assert verification_folds(same, np.repeat([0, 1], 300))[1] == FOLDS_AS_GIVEN
    with pytest.raises(VerificationError, match="too few"):
        verification_folds(np.array([True, False]), np.zeros(2, int))


def test_folds_of_one_class_and_lists_of_one_class():
    assert best_threshold(np.array([0.3, 0.7]), np.array([True, True])) == (0.3, 1.0)  # accept all
    threshold, accuracy = best_threshold(np.array([0.3, 0.7]), np.array([False, False]))  # reject all
    assert threshold > 0.7 and accuracy == 1.0
    scores, same = np.array([0.9, 0.8, 0.2, 0.1]), np.array([True, True, False, False])
    result = fold_accuracy(scores, same, np.array([0, 0, 1, 1]))
    assert result.accuracies == [1.0, 1.0]
    assert tar_at_far(scores, same, 0.5, "fold", np.array([0, 0, 1, 1]))[0] == 1.0  # fold 0 alone has a TAR
    with pytest.raises(VerificationError, match="genuine and impostor pairs: 2 genuine, 0 impostor"):
        evaluate_pairs(scores[:2], same[:2])
    with pytest.raises(VerificationError, match="1 pair scores are not finite"):
        evaluate_pairs(np.array([0.9, np.nan, 0.2, 0.1]), same)
