"""Quality statistics and drift scores: pure functions over numpy, table-driven, and the
tracker and its Prometheus families as /metrics shows them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgeline.runtime.metrics import RuntimeMetrics
from edgeline.runtime.quality import (
    MAX_CHANNELS,
    PROFILE_FORMAT,
    TOP_SCORE_BUCKETS,
    ProfileInvalid,
    QualityTracker,
    bin_counts,
    build_profile,
    channel_sums,
    channel_view,
    check_profile,
    is_classifier,
    mean_shift,
    moments,
    parse_profile,
    predicted_classes,
    psi,
    top_scores,
)
from edgeline.runtime.tensors import TensorSpec

IDENTITY = {"model": "detector", "version": "2.0.0", "deployment": "line-3", "namespace": "factory",
            "cluster": "edge-a"}
RNG = np.random.default_rng(7)


# -- channel statistics ---------------------------------------------------------------------------

@pytest.mark.parametrize(("shape", "view"), [
    ((), (1, 1, 1)),
    ((5,), (1, 1, 5)),            # one channel
    ((4, 3), (4, 3, 1)),          # NC: channel = last axis
    ((2, 3, 8, 8), (2, 3, 64)),   # NCHW: channel = axis 1
    ((1, 40, 10), (1, MAX_CHANNELS, 10)),  # capped
])
def test_channel_view_puts_channels_on_axis_1(shape, view):
    assert channel_view(np.zeros(shape, np.float32)).shape == view


@pytest.mark.parametrize("array", [
    RNG.normal(3, 2, (64, 3)).astype(np.float32),
    RNG.random((4, 3, 16, 16), dtype=np.float32),
    RNG.integers(0, 255, (2, 3, 8, 8), dtype=np.uint8),
    np.array([[True, False], [True, True]]),
])
def test_channel_sums_give_numpys_mean_and_std(array):
    count, total, squares = channel_sums(array)
    mean, std = moments(count, total, squares)
    per_channel = np.moveaxis(array.astype(np.float64), 1, 0).reshape(array.shape[1], -1)
    np.testing.assert_allclose(mean, per_channel.mean(axis=1), rtol=1e-6)
    np.testing.assert_allclose(std, per_channel.std(axis=1), rtol=1e-5, atol=1e-9)
    assert (count == per_channel.shape[1]).all()


def test_strings_have_no_statistics():
    with pytest.raises(TypeError):
        channel_sums(np.array([["a", "b"]], dtype=object))


# -- outputs -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("output", "tops", "classifier"), [
    (np.array([[0.1, 0.9], [0.7, 0.3]], np.float32), [0.9, 0.7], True),
    (np.array([0.2, 0.5], np.float32), [0.5], False),                 # one row
    (np.zeros((2, 3, 4), np.float32) + [[[0.0]], [[1.5]]], [0.0, 1.5], False),  # N-D: max after axis 0
    (np.zeros((3, 100), np.float32), [0, 0, 0], False),              # too many classes for a classifier
    (np.array([[1, 2]], np.int64), None, False),                      # labels, not scores
    (np.array([["a"]], dtype=object), None, False),
])
def test_top_scores_and_classifier_shape(output, tops, classifier):
    found = top_scores(output)
    assert (found is None) if tops is None else np.allclose(found, tops)
    assert is_classifier(output) is classifier


def test_predicted_classes_count_the_argmax_of_each_row():
    output = np.array([[0.1, 0.8, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1]], np.float32)
    assert predicted_classes(output).tolist() == [1, 2, 0]


@pytest.mark.parametrize(("values", "counts"), [
    ([0.05, 0.1, 0.15, 1.0, 1.5], [2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1]),  # upper bounds are inclusive
    ([], [0] * 13),
])
def test_bin_counts_use_prometheus_le_bins(values, counts):
    assert bin_counts(np.array(values), TOP_SCORE_BUCKETS).tolist() == counts


# -- scores --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("window", "ref_mean", "ref_std", "score"), [
    ([0.5, 0.5], [0.5, 0.5], [0.1, 0.2], 0.0),
    ([0.6, 0.5], [0.5, 0.5], [0.1, 0.2], 1.0),    # one std off in channel 0
    ([0.5, 0.1], [0.5, 0.5], [0.1, 0.2], 2.0),    # the largest channel shift wins, either direction
])
def test_mean_shift_is_the_largest_standardized_channel_shift(window, ref_mean, ref_std, score):
    assert mean_shift(np.array(window), np.array(ref_mean), np.array(ref_std)) == pytest.approx(score)


@pytest.mark.parametrize(("actual", "expected", "low", "high"), [
    ([10, 20, 70], [0.1, 0.2, 0.7], 0.0, 1e-9),     # same distribution
    ([12, 20, 68], [0.1, 0.2, 0.7], 0.0, 0.1),      # noise: below the 0.1 "small" mark
    ([70, 20, 10], [0.1, 0.2, 0.7], 0.25, 10),      # swapped: significant
    ([0, 0, 100], [0.5, 0.5, 0.0], 0.25, 100),      # empty bins stay finite
])
def test_psi(actual, expected, low, high):
    assert low <= psi(np.array(actual), np.array(expected)) <= high


# -- profiles ------------------------------------------------------------------------------------

def good_profile(**changes) -> dict:
    doc = {"format": PROFILE_FORMAT, "channels": [{"mean": 0.5, "std": 0.29}] * 3,
           "topScore": {"output": "probabilities", "bounds": [0.5, 0.9], "fractions": [0.1, 0.3, 0.6]},
           "pipeline": "defect-retraining"}
    doc.update(changes)
    return {k: v for k, v in doc.items() if v is not None}


@pytest.mark.parametrize(("doc", "problem"), [
    (b"{not json", "not JSON"),
    ([1], "JSON object"),
    (good_profile(format="v0"), "format"),
    (good_profile(channels=[]), "1 to 16"),
    (good_profile(channels=[{"mean": 1}]), "numeric mean and std"),
    (good_profile(channels=[{"mean": 1, "std": 0}]), "> 0"),
    (good_profile(topScore={"output": "p", "bounds": [0.9, 0.5], "fractions": [0.1, 0.3, 0.6]}), "increasing"),
    (good_profile(topScore={"output": "p", "bounds": [0.5], "fractions": [0.5, 0.6]}), "summing to 1"),
    (good_profile(pipeline=3), "DataPipeline"),
])
def test_a_bad_profile_says_what_is_wrong(doc, problem):
    with pytest.raises(ProfileInvalid, match=problem):
        parse_profile(doc if isinstance(doc, bytes) else json.dumps(doc))


def test_a_profile_round_trips_from_training_data():
    images = RNG.random((200, 3, 8, 8), dtype=np.float32)
    scores = RNG.uniform(0.5, 1.0, 200)
    doc = build_profile(images, top_scores=scores, output="probabilities", input="image", pipeline="retrain")
    profile = parse_profile(json.dumps(doc))
    np.testing.assert_allclose(profile.means, images.mean(axis=(0, 2, 3)), rtol=1e-5)
    assert profile.pipeline == "retrain" and profile.input == "image"
    assert profile.top_score.output == "probabilities" and sum(profile.top_score.fractions) == pytest.approx(1)


IMAGE = TensorSpec("image", "FP32", [-1, 3, 64, 64])
PROBABILITIES = TensorSpec("probabilities", "FP32", [-1, 2])


@pytest.mark.parametrize(("doc", "problem"), [
    (good_profile(), None),
    (good_profile(input="pixels"), "describes input 'pixels'"),
    (good_profile(channels=[{"mean": 0, "std": 1}] * 4), "4 channels"),
    (good_profile(topScore={"output": "boxes", "bounds": [0.5], "fractions": [0.5, 0.5]}), "not an output"),
])
def test_a_profile_must_fit_the_model(doc, problem):
    profile = parse_profile(doc)
    if problem is None:
        assert check_profile(profile, [IMAGE], [PROBABILITIES]).input == "image"
    else:
        with pytest.raises(ProfileInvalid, match=problem):
            check_profile(profile, [IMAGE], [PROBABILITIES])


# -- the tracker -------------------------------------------------------------------------------

def answer(frames: np.ndarray) -> dict[str, np.ndarray]:
    """A stand-in classifier: P(defect) grows with the mean of channel 0."""
    p = np.clip(frames[:, 0].mean(axis=(1, 2)), 0, 1).astype(np.float32)
    return {"probabilities": np.stack([1 - p, p], axis=1)}


def test_the_drift_score_rises_when_inputs_shift_and_the_window_forgets():
    train = RNG.random((500, 3, 8, 8), dtype=np.float32)
    profile = check_profile(parse_profile(build_profile(train)), [IMAGE], [PROBABILITIES])
    tracker = QualityTracker(window=20, profile=profile)
    for i in range(20):
        frames = RNG.random((2, 3, 8, 8), dtype=np.float32)
        tracker.observe({"image": frames}, answer(frames), "image")
    calm = tracker.snapshot()
    assert calm.window_requests == 20
    assert calm.scores["input"] < 0.1
    for i in range(20):  # channel 1 brightened by 0.5: about 1.7 reference stds
        frames = RNG.random((2, 3, 8, 8), dtype=np.float32)
        frames[:, 1] += 0.5
        tracker.observe({"image": frames}, answer(frames), "image")
    shifted = tracker.snapshot()
    assert shifted.scores["input"] > 1.5
    assert shifted.channel_mean[1] == pytest.approx(1.0, abs=0.05)
    assert "prediction" not in shifted.scores  # the profile has no topScore


def test_without_a_profile_there_are_statistics_but_no_score():
    tracker = QualityTracker(window=4)
    frames = RNG.random((3, 3, 8, 8), dtype=np.float32)
    tracker.observe({"image": frames}, answer(frames), "image")
    snap = tracker.snapshot()
    assert snap.scores == {}
    assert snap.class_counts["probabilities"].sum() == 3
    assert snap.top_score_counts["probabilities"].sum() == 3


def test_prediction_drift_from_the_top_score():
    doc = build_profile(RNG.random((100, 3, 8, 8), dtype=np.float32),
                        top_scores=RNG.uniform(0.9, 1.0, 1000), output="probabilities")
    tracker = QualityTracker(window=50, profile=check_profile(parse_profile(doc), [IMAGE], [PROBABILITIES]))
    for _ in range(50):  # the model is unsure: top scores near 0.5
        frames = np.full((1, 3, 8, 8), 0.5, np.float32) + RNG.normal(0, 0.01, (1, 3, 8, 8)).astype(np.float32)
        tracker.observe({"image": frames}, answer(frames), "image")
    assert tracker.snapshot().scores["prediction"] > 0.25


# -- as Prometheus shows it ------------------------------------------------------------------

def value(metrics: RuntimeMetrics, name: str, **labels) -> float | None:
    return metrics.registry.get_sample_value(name, {**IDENTITY, **labels})


def test_the_families_carry_the_identity_and_the_reference_state():
    metrics = RuntimeMetrics(IDENTITY)
    assert value(metrics, "edgeline_runtime_drift_reference", state="missing", pipeline="") == 1
    tracker = QualityTracker(window=8)
    metrics.enable_quality(tracker)
    frames = np.zeros((4, 3, 8, 8), np.float32) + np.array([0.2, 0.4, 0.6], np.float32)[None, :, None, None]
    tracker.observe({"image": frames}, {"probabilities": np.array([[0.95, 0.05]] * 3 + [[0.3, 0.7]], np.float32)},
                    "image")
    assert value(metrics, "edgeline_runtime_input_channel_mean", input="image", channel="1") == pytest.approx(0.4)
    assert value(metrics, "edgeline_runtime_input_channel_std", input="image", channel="1") == pytest.approx(0, abs=1e-6)
    assert value(metrics, "edgeline_runtime_predicted_class_total", output="probabilities", **{"class": "0"}) == 3
    assert value(metrics, "edgeline_runtime_top_score_bucket", output="probabilities", le="0.7") == 1
    assert value(metrics, "edgeline_runtime_top_score_bucket", output="probabilities", le="+Inf") == 4
    assert value(metrics, "edgeline_runtime_top_score_sum", output="probabilities") == pytest.approx(3 * 0.95 + 0.7)
    assert value(metrics, "edgeline_runtime_drift_window_requests") == 1
    assert value(metrics, "edgeline_runtime_drift_score", kind="input") is None  # no profile, no score
    metrics.reference("loaded", "defect-retraining")
    assert value(metrics, "edgeline_runtime_drift_reference", state="missing", pipeline="") is None
    assert value(metrics, "edgeline_runtime_drift_reference", state="loaded", pipeline="defect-retraining") == 1
    assert b"# TYPE edgeline_runtime_top_score histogram" in metrics.exposition()


def test_data_far_from_zero_keep_their_small_std():
    # float32 values around 1000 with a std of 0.01: summed around zero, the variance would be
    # lost in E[x^2] - E[x]^2; the tracker sums around a pivot (here the first request's means).
    tracker = QualityTracker(window=10)
    for seed in range(10):
        rows = (1000 + np.random.default_rng(seed).normal(0, 0.01, (8, 2))).astype(np.float32)
        tracker.observe({"x": rows}, {}, "x")
    snap = tracker.snapshot()
    np.testing.assert_allclose(snap.channel_mean, [1000, 1000], atol=0.01)
    np.testing.assert_allclose(snap.channel_std, [0.01, 0.01], rtol=0.3)


@pytest.mark.parametrize("pivot", [None, np.array([0.5, 0.5, 0.5]), np.array([-3.0, 10.0, 0.0])])
def test_moments_come_back_whatever_the_pivot(pivot):
    array = RNG.random((4, 3, 16, 16), dtype=np.float32)
    mean, std = moments(*channel_sums(array, pivot), pivot)
    np.testing.assert_allclose(mean, array.mean(axis=(0, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(std, array.std(axis=(0, 2, 3)), rtol=1e-4)
