"""Benchmark evaluation (`esrgan test`): per-image protocol metrics, reports and comparison figures."""

from esrgan.evaluation.run import (
    BICUBIC,
    EvaluationError,
    EvaluationOptions,
    EvaluationRun,
    OptionError,
    parse_figures,
    parse_lr_source,
    run_test,
)
from esrgan.evaluation.runner import (
    LPIPS_HEADS_FILE,
    LPIPS_VGG_FILE,
    METRIC_KEYS,
    DatasetResult,
    ImageResult,
    Sample,
    bicubic_sr,
    default_lpips_search_dirs,
    evaluate_dataset,
    load_sample_inputs,
    run_sample,
    score,
)

__all__ = [
    "BICUBIC",
    "LPIPS_HEADS_FILE",
    "LPIPS_VGG_FILE",
    "METRIC_KEYS",
    "DatasetResult",
    "EvaluationError",
    "EvaluationOptions",
    "EvaluationRun",
    "ImageResult",
    "OptionError",
    "Sample",
    "bicubic_sr",
    "default_lpips_search_dirs",
    "evaluate_dataset",
    "load_sample_inputs",
    "parse_figures",
    "parse_lr_source",
    "run_sample",
    "run_test",
    "score",
]
