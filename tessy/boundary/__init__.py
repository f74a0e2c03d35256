"""Boundary predictors: token classifiers that tell where a teacher span or a student span ends.

windows -> annotation (LLM annotator or lexicon) -> training -> evaluation -> BoundaryPredictor.
"""

from tessy.boundary.annotate import ANNOTATOR_VERSION, Annotation, annotate_llm, annotation_prompt
from tessy.boundary.base import make_base, random_base
from tessy.boundary.cut import Cut, find_cut
from tessy.boundary.evaluate import evaluate, score
from tessy.boundary.lexicon import GENERAL, MICROWORLD, Lexicon
from tessy.boundary.predictor import BoundaryPredictor, Prediction, Request
from tessy.boundary.segments import SegmentSample, sample_segments
from tessy.boundary.train import TrainConfig, TrainResult, train
from tessy.boundary.windows import Window, cut_windows, dedup, load_windows, save_windows

__all__ = [
    "GENERAL",
    "ANNOTATOR_VERSION",
    "MICROWORLD",
    "Annotation",
    "BoundaryPredictor",
    "Cut",
    "Lexicon",
    "Prediction",
    "Request",
    "SegmentSample",
    "TrainConfig",
    "TrainResult",
    "Window",
    "annotate_llm",
    "cut_windows",
    "dedup",
    "evaluate",
    "find_cut",
    "annotation_prompt",
    "load_windows",
    "make_base",
    "random_base",
    "sample_segments",
    "save_windows",
    "score",
    "train",
]
