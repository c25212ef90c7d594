"""thinkgate predictors: featurizers, outcome models and the artifact the gateway loads.

Importing this package is cheap: the record formats are standard-library only,
and everything that needs numpy / scikit-learn / onnxruntime is imported lazily
on first attribute access (``predictors.load_predictor`` etc.).
"""

from __future__ import annotations

from typing import Any

from predictors.records import (
    OutcomeRecord,
    OutcomeRow,
    RecordError,
    load_outcome_records,
    load_outcome_table,
    messages_to_prompt,
    option_name,
    parse_option,
    records_to_table,
    validate_outcome_record,
    validate_outcome_row,
    write_outcome_records,
    write_outcome_table,
)

# Heavy names -> the module that defines them (imported on first access only).
_LAZY = {
    "OptionEstimate": "predictors.model",
    "Predictor": "predictors.model",
    "ArtifactError": "predictors.artifact",
    "load_predictor": "predictors.artifact",
    "save_predictor": "predictors.artifact",
    "train_predictor": "predictors.train",
    "TrainingSet": "predictors.train",
    "load_training_data": "predictors.train",
    "evaluate_predictor": "predictors.evaluate",
    "load_costs": "predictors.evaluate",
    "Featurizer": "predictors.featurizers",
    "get_featurizer": "predictors.featurizers",
    "available_featurizers": "predictors.featurizers",
}

__all__ = [
    "OutcomeRecord",
    "OutcomeRow",
    "RecordError",
    "load_outcome_records",
    "load_outcome_table",
    "messages_to_prompt",
    "option_name",
    "parse_option",
    "records_to_table",
    "validate_outcome_record",
    "validate_outcome_row",
    "write_outcome_records",
    "write_outcome_table",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    """Import heavy public names on first use (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'predictors' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
