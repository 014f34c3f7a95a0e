"""Benchmark evaluation (`esrgan test`): per-image protocol metrics, reports and comparison figures."""

from esrgan.evaluation.runner import (
    METRIC_KEYS,
    DatasetResult,
    ImageResult,
    Sample,
    bicubic_sr,
    evaluate_dataset,
    load_sample_inputs,
    run_sample,
    score,
)

__all__ = [
    "METRIC_KEYS",
    "DatasetResult",
    "ImageResult",
    "Sample",
    "bicubic_sr",
    "evaluate_dataset",
    "load_sample_inputs",
    "run_sample",
    "score",
]
