"""Data: dataset specs, the record format, synthetic datasets and grain pipelines.

Importing this package registers the built-in datasets (`synthetic_shapes`,
`synthetic_motion`) in `framework.registry.DATASETS` and the preprocess ops (catalog in
`framework.data.ops`) in `framework.registry.PREPROCESS_OPS`. The pipelines live in
`framework.data.pipeline` (imported separately: it imports jax).
"""

from framework.data import (
    ops,  # noqa: F401  (registers the preprocess ops)
    synthetic,  # noqa: F401  (registers the synthetic datasets)
    synthetic_captions,  # noqa: F401  (registers synthetic_captions and the tokenize op)
)
from framework.data.spec import CorruptRecordError, DatasetSpec, resolve_data_dir

__all__ = ["CorruptRecordError", "DatasetSpec", "resolve_data_dir"]
