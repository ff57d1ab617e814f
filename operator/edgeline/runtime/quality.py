"""Model-quality and drift signals of one runtime: what the model is asked (input statistics per
channel), what it answers (the top score of each output row, the predicted class), and how far the
recent inputs and answers are from the reference profile recorded when the model was trained.

Pure numpy over the arrays the server already decoded; nothing here touches HTTP or Prometheus
(edgeline.runtime.metrics exports it). Per request the work is a few vectorized reductions
and a write into fixed-size ring buffers, so memory stays bounded whatever the traffic; the
window statistics and scores are computed when /metrics is scraped, not per request.

Drift scores (docs/runtime.md#model-quality-and-drift):
  input       max over channels of |mean_window - mean_ref| / std_ref: the standardized shift
              of the channel means of the last `window` requests (1.0 = one reference std)
  prediction  population stability index of the top score of the profile's output over the
              same window against the profile's fractions (0.1 small, 0.25 significant shift)
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass

import numpy as np

PROFILE_FORMAT = "edgeline.io/reference-profile/v1"
MAX_CHANNELS = 16  # channels of the first input that get statistics (label cardinality)
MAX_CLASSES = 32  # a 2-D output with more columns is not treated as a classifier
# Top scores are probabilities for most classifiers; logits and regressions land in +Inf.
TOP_SCORE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
PSI_FLOOR = 1e-4  # an empty bin counts as this fraction, so PSI stays finite
# Values per channel one request contributes: a larger input is sampled with a stride (every
# k-th value of each row), so that the cost per request stays bounded whatever the input size.
MAX_VALUES_PER_CHANNEL = 1024
MIN_WINDOW_ROWS = 16  # fewer rows than this in the window: no score yet (too noisy)


class ProfileInvalid(ValueError):
    """The reference profile cannot be used with this model; the message says why."""


@dataclass(frozen=True)
class TopScoreProfile:
    output: str
    bounds: tuple[float, ...]  # upper bounds of the bins; the last bin is above bounds[-1]
    fractions: tuple[float, ...]  # len(bounds) + 1, summing to 1


@dataclass(frozen=True)
class ReferenceProfile:
    """Per-channel mean and std of the training inputs (channel = axis 1 of the first input, or
    the only axis of a 1-D input), optionally the top-score distribution of one output, and the
    DataPipeline (in the deployment's namespace) that retrains the model when it drifts."""

    means: np.ndarray
    stds: np.ndarray
    input: str | None = None
    top_score: TopScoreProfile | None = None
    pipeline: str = ""

    @property
    def channels(self) -> int:
        return len(self.means)


def parse_profile(raw: bytes | str | dict) -> ReferenceProfile:
    """A ReferenceProfile from its JSON; ProfileInvalid names the first problem."""
    try:
        doc = json.loads(raw) if isinstance(raw, (bytes, str)) else raw
    except ValueError as exc:
        raise ProfileInvalid(f"the reference profile is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ProfileInvalid("the reference profile must be a JSON object")
    if doc.get("format") != PROFILE_FORMAT:
        raise ProfileInvalid(f"the reference profile's format must be {PROFILE_FORMAT!r}, not {doc.get('format')!r}")
    channels = doc.get("channels")
    if not isinstance(channels, list) or not 1 <= len(channels) <= MAX_CHANNELS:
        raise ProfileInvalid(f"channels must be a list of 1 to {MAX_CHANNELS} {{mean, std}} objects")
    try:
        means = np.array([float(c["mean"]) for c in channels], np.float64)
        stds = np.array([float(c["std"]) for c in channels], np.float64)
    except (TypeError, KeyError, ValueError):
        raise ProfileInvalid("every channel needs a numeric mean and std") from None
    if not (np.isfinite(means).all() and np.isfinite(stds).all()) or (stds <= 0).any():
        raise ProfileInvalid("channel means must be finite and stds finite and > 0")
    top = doc.get("topScore")
    top_score = None
    if top is not None:
        try:
            bounds = tuple(float(b) for b in top["bounds"])
            fractions = tuple(float(f) for f in top["fractions"])
            output = str(top["output"])
        except (TypeError, KeyError, ValueError):
            raise ProfileInvalid("topScore needs output, bounds and fractions") from None
        if not bounds or list(bounds) != sorted(set(bounds)):
            raise ProfileInvalid("topScore.bounds must be increasing")
        if len(fractions) != len(bounds) + 1 or min(fractions) < 0 or not math.isclose(sum(fractions), 1, abs_tol=1e-3):
            raise ProfileInvalid("topScore.fractions must be len(bounds)+1 non-negative numbers summing to 1")
        top_score = TopScoreProfile(output, bounds, fractions)
    pipeline = doc.get("pipeline", "") or ""
    if not isinstance(pipeline, str):
        raise ProfileInvalid("pipeline must be the name of a DataPipeline")
    name = doc.get("input")
    return ReferenceProfile(means, stds, str(name) if name else None, top_score, pipeline)


def build_profile(inputs: np.ndarray, *, top_scores: np.ndarray | None = None, output: str | None = None,
                  bounds: tuple[float, ...] = TOP_SCORE_BUCKETS, input: str | None = None,
                  pipeline: str = "") -> dict:
    """The profile JSON of training (or validation) data, as a training step writes it:
    `inputs` as the model takes them, `top_scores` the max of each output row of `output`."""
    count, total, squares = channel_stats(inputs, cap=None)
    means, stds = moments(count, total, squares)
    doc: dict = {"format": PROFILE_FORMAT,
                 "channels": [{"mean": float(m), "std": float(max(s, 1e-12))} for m, s in zip(means, stds)]}
    if input:
        doc["input"] = input
    if pipeline:
        doc["pipeline"] = pipeline
    if top_scores is not None and output:
        counts = bin_counts(np.asarray(top_scores, np.float64).reshape(-1), bounds)
        doc["topScore"] = {"output": output, "bounds": list(bounds),
                           "fractions": [float(c) for c in counts / max(counts.sum(), 1)]}
    return doc


# -- per-request statistics (pure) ----------------------------------------------------------------

def channel_view(array: np.ndarray) -> np.ndarray:
    """The array as (rows, channels, values): channel = axis 1 (NC, NCHW, NCL...), the first
    MAX_CHANNELS only; a 1-D array is one channel; a scalar is one value."""
    a = np.asarray(array)
    if a.ndim == 0:
        return a.reshape(1, 1, 1)
    if a.ndim == 1:
        return a.reshape(1, 1, -1)
    a = a[:, :MAX_CHANNELS]
    return a.reshape(a.shape[0], a.shape[1], -1)


def sampled(view: np.ndarray, cap: int = MAX_VALUES_PER_CHANNEL) -> np.ndarray:
    """At most about `cap` values per channel of a (rows, channels, values) view: every k-th value
    of each row, then every k-th row if that is still too many (a view, no copy)."""
    rows, _, values = view.shape
    if rows * values <= cap:
        return view
    view = view[:, :, ::min(values, -(-rows * values // cap))]
    left = rows * view.shape[2]
    return view[::-(-left // cap)] if left > cap else view


def channel_sums(array: np.ndarray, pivot: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per channel: number of values, sum and sum of squares of (value - pivot), as float64."""
    stats = channel_stats(array, pivot)
    return stats[0], stats[1], stats[2]


def channel_stats(array: np.ndarray, pivot: np.ndarray | None = None,
                  cap: int | None = MAX_VALUES_PER_CHANNEL) -> np.ndarray:
    """channel_sums as one (3, channels) float64 array, over at most `cap` values per channel.
    The pivot (a typical value per channel, e.g. the reference mean) keeps the variance from
    cancelling out when the data sit far from zero; the sums themselves run in the data's own
    float type (numpy's pairwise sums), which is 3x faster than casting every value."""
    view = channel_view(array) if cap is None else sampled(channel_view(array), cap)
    if view.dtype.kind not in "fiub":
        raise TypeError(f"no statistics for {view.dtype} data")
    if view.dtype.kind != "f":
        view = view.astype(np.float32)
    if pivot is not None:
        view = view - pivot[: view.shape[1]].astype(view.dtype)[None, :, None]
    stats = np.empty((3, view.shape[1]), np.float64)
    stats[0] = view.shape[0] * view.shape[2]
    stats[1] = view.sum(axis=(0, 2))
    stats[2] = np.einsum("ijk,ijk->j", view, view)  # squares and sums in one pass
    return stats


def moments(count: np.ndarray, total: np.ndarray, squares: np.ndarray,
            pivot: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (population) std per channel from count, sum and sum of squares (of value - pivot)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
        var = np.maximum(squares / count - mean * mean, 0.0)
    if pivot is not None:
        mean = mean + pivot[: len(mean)]
    return mean, np.sqrt(var)


def top_scores(output: np.ndarray) -> np.ndarray | None:
    """The max of each row (everything after axis 0) of a float output; None for other outputs."""
    a = np.asarray(output)
    if a.dtype.kind != "f" or a.ndim == 0 or a.size == 0:
        return None
    if a.ndim == 1:
        return a.reshape(1, -1).max(axis=1) if a.shape[0] > 0 else None
    return a.reshape(a.shape[0], -1).max(axis=1)


def is_classifier(output: np.ndarray) -> bool:
    """[batch, classes] of floats with 2 to MAX_CLASSES classes."""
    a = np.asarray(output)
    return a.dtype.kind == "f" and a.ndim == 2 and 2 <= a.shape[1] <= MAX_CLASSES


def predicted_classes(output: np.ndarray) -> np.ndarray:
    """How often each class was the argmax of a row, shape (classes,)."""
    a = np.asarray(output)
    return np.bincount(a.argmax(axis=1), minlength=a.shape[1])


def bin_counts(values: np.ndarray, bounds: tuple[float, ...] | np.ndarray) -> np.ndarray:
    """Counts per bin; bin i holds bounds[i-1] < v <= bounds[i], the last bin v > bounds[-1]."""
    return np.bincount(np.searchsorted(bounds, values, side="left"), minlength=len(bounds) + 1)


_TOP_BOUNDS = np.array(TOP_SCORE_BUCKETS)


# -- scores (pure) --------------------------------------------------------------------------------

def mean_shift(window_mean: np.ndarray, ref_mean: np.ndarray, ref_std: np.ndarray) -> float:
    """max over channels of |window mean - reference mean| / reference std."""
    n = min(len(window_mean), len(ref_mean))
    return float(np.max(np.abs(window_mean[:n] - ref_mean[:n]) / ref_std[:n]))


def psi(actual: np.ndarray, expected: np.ndarray) -> float:
    """Population stability index of counts (or fractions) `actual` against `expected`."""
    a = np.asarray(actual, np.float64)
    e = np.asarray(expected, np.float64)
    a = np.maximum(a / max(a.sum(), 1e-12), PSI_FLOOR)
    e = np.maximum(e / max(e.sum(), 1e-12), PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


# -- the runtime's state --------------------------------------------------------------------------

@dataclass(frozen=True)
class Snapshot:
    """What /metrics shows, taken under the lock."""

    input: str | None
    window_requests: int
    channel_mean: np.ndarray | None  # over the window
    channel_std: np.ndarray | None
    top_score_counts: dict[str, np.ndarray]  # per output: counts per TOP_SCORE_BUCKETS bin (cumulative later)
    top_score_sums: dict[str, float]
    class_counts: dict[str, np.ndarray]
    scores: dict[str, float]  # kind -> score, only for kinds the profile supports and once the window is full enough


class QualityTracker:
    """Running quality statistics of one runtime. `observe` is called from the inference threads
    after each successful run; `snapshot` from the /metrics handler. Bounded: the window is a ring
    of `window` requests, each (3, channels) floats plus the profile's top-score bins."""

    def __init__(self, window: int = 256, profile: ReferenceProfile | None = None):
        self.window = window
        self.profile = profile
        self._lock = threading.Lock()
        self._input: str | None = None
        self._channels = 0
        self._ring: np.ndarray | None = None  # (window, 3, channels): count, sum, squares
        self._top_ring: np.ndarray | None = None  # (window, bins) for the profile's output
        self._next = 0
        self._filled = 0
        self._top_counts: dict[str, np.ndarray] = {}
        self._top_sums: dict[str, float] = {}
        self._classes: dict[str, np.ndarray] = {}
        self._pivot: np.ndarray | None = None  # per channel: the profile's means, or the first request's
        self._top_bounds: np.ndarray | None = None
        self.set_profile(profile)

    def set_profile(self, profile: ReferenceProfile | None) -> None:
        with self._lock:
            self.profile = profile
            self._top_ring = (np.zeros((self.window, len(profile.top_score.bounds) + 1), np.float64)
                              if profile and profile.top_score else None)
            self._top_bounds = np.array(profile.top_score.bounds) if profile and profile.top_score else None
            self._pivot = None if profile is None else profile.means.copy()
            self._ring = None  # statistics against another pivot do not add up

    def observe(self, inputs: dict[str, np.ndarray], outputs: dict[str, np.ndarray], first_input: str) -> None:
        array = inputs.get(first_input)
        stats = None
        pivot = self._pivot  # read once: observe runs in several inference threads
        if array is not None and array.dtype.kind in "fiub" and array.size:
            if pivot is None or len(pivot) != min(channel_view(array).shape[1], MAX_CHANNELS):
                count, total, _ = channel_sums(array)
                pivot = total / count  # this request's means: statistics stay centred near the data
            stats = channel_stats(array, pivot)
        tops = {name: top_scores(value) for name, value in outputs.items()}
        top_bins = {name: bin_counts(t, _TOP_BOUNDS) for name, t in tops.items() if t is not None}
        classes = {name: predicted_classes(value) for name, value in outputs.items() if is_classifier(value)}
        profiled = self.profile.top_score if self.profile else None
        profile_bins = None
        if profiled is not None and self._top_bounds is not None and tops.get(profiled.output) is not None:
            profile_bins = bin_counts(tops[profiled.output], self._top_bounds)
        with self._lock:
            for name, bins in top_bins.items():
                self._top_counts[name] = self._top_counts.get(name, 0) + bins
                self._top_sums[name] = self._top_sums.get(name, 0.0) + float(tops[name].sum())
            for name, counts in classes.items():
                known = self._classes.get(name)
                self._classes[name] = counts if known is None or len(known) != len(counts) else known + counts
            if stats is None:
                return
            if self._ring is None or self._channels != stats.shape[1]:
                # The first statistics (or the input's channels changed): start over around this pivot.
                self._input, self._channels, self._pivot = first_input, stats.shape[1], pivot
                self._ring = np.zeros((self.window, 3, self._channels), np.float64)
                self._next = self._filled = 0
            elif pivot is not self._pivot:
                return  # a first request racing another, summed around its own pivot: left out
            self._ring[self._next] = stats
            if self._top_ring is not None:
                self._top_ring[self._next] = 0 if profile_bins is None else profile_bins
            self._next = (self._next + 1) % self.window
            self._filled = min(self._filled + 1, self.window)

    def snapshot(self) -> Snapshot:
        with self._lock:
            ring = None if self._ring is None else self._ring[:self._filled].sum(axis=0)
            top_window = None if self._top_ring is None else self._top_ring[:self._filled].sum(axis=0)
            top_counts = {k: v.copy() for k, v in self._top_counts.items()}
            top_sums = dict(self._top_sums)
            classes = {k: v.copy() for k, v in self._classes.items()}
            profile = self.profile
            name = self._input
            requests = self._filled
            pivot = self._pivot
        mean = std = None
        scores: dict[str, float] = {}
        if ring is not None and requests:
            mean, std = moments(ring[0], ring[1], ring[2], pivot)
        if profile is not None and ring is not None and ring[0].min() >= MIN_WINDOW_ROWS:
            scores["input"] = mean_shift(mean, profile.means, profile.stds)
        if profile is not None and profile.top_score and top_window is not None and top_window.sum() >= MIN_WINDOW_ROWS:
            scores["prediction"] = psi(top_window, np.array(profile.top_score.fractions))
        return Snapshot(name, requests, mean, std, top_counts, top_sums, classes, scores)


def check_profile(profile: ReferenceProfile, inputs: list, outputs: list) -> ReferenceProfile:
    """The profile, if it fits the model's tensor specs (TensorSpec: name, datatype, shape);
    ProfileInvalid otherwise. Returns it with `input` set to the first input's name."""
    if not inputs:
        raise ProfileInvalid("the model has no inputs")
    first = inputs[0]
    if profile.input and profile.input != first.name:
        raise ProfileInvalid(f"the profile describes input {profile.input!r}; the runtime keeps statistics of "
                             f"the model's first input {first.name!r}")
    shape = list(first.shape)
    channels = 1 if len(shape) <= 1 else shape[1]
    if channels != -1 and min(channels, MAX_CHANNELS) != profile.channels:
        raise ProfileInvalid(f"the profile has {profile.channels} channels; input {first.name!r} has "
                             f"{min(channels, MAX_CHANNELS)} (shape {shape}, channel axis 1)")
    if profile.top_score and profile.top_score.output not in {spec.name for spec in outputs}:
        raise ProfileInvalid(f"the profile's topScore output {profile.top_score.output!r} is not an output of the model")
    return ReferenceProfile(profile.means, profile.stds, first.name, profile.top_score, profile.pipeline)


def main(argv: list[str] | None = None) -> int:
    """`python -m edgeline.runtime.quality --inputs frames.npy --model model.onnx --out profile.json`:
    the reference profile a training step writes beside the model. With --model, the model is run on
    the inputs (in batches) for the top-score distribution of --output (default: its first output)."""
    import argparse
    import hashlib
    import sys
    from pathlib import Path

    parser = argparse.ArgumentParser(prog="python -m edgeline.runtime.quality", description=main.__doc__.split("\n")[0])
    parser.add_argument("--inputs", type=Path, required=True, help=".npy file: the model's first input, training data")
    parser.add_argument("--model", type=Path, help="the ONNX model, to profile its top scores too")
    parser.add_argument("--output", help="the output whose top score is profiled (default: the first)")
    parser.add_argument("--pipeline", default="", help="the DataPipeline that retrains the model")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        data = np.load(args.inputs, allow_pickle=False)
    except (OSError, ValueError) as exc:
        print(f"cannot read --inputs {args.inputs}: {exc}", file=sys.stderr)
        return 2
    scores = output = name = None
    if args.model:
        import onnxruntime as ort

        session = ort.InferenceSession(str(args.model), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        output = args.output or session.get_outputs()[0].name
        scores = np.concatenate([top_scores(session.run([output], {name: data[i:i + args.batch]})[0])
                                 for i in range(0, len(data), args.batch)])
    doc = build_profile(data, top_scores=scores, output=output, input=name, pipeline=args.pipeline)
    text = json.dumps(doc, indent=2) + "\n"
    args.out.write_text(text)
    print(f"sha256:{hashlib.sha256(text.encode()).hexdigest()}  {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
