"""Data: dataset specs, the record format, synthetic datasets and grain pipelines.

Importing this package registers the built-in datasets (`synthetic_shapes`,
`synthetic_motion`, `array_record` for data prepared by tools/prepare_dataset.py, `tfds`)
in `framework.registry.DATASETS` and the preprocess ops (catalog in `framework.data.ops`)
in `framework.registry.PREPROCESS_OPS`. The pipelines live in
`framework.data.pipeline` (imported separately: it imports jax).
"""

from framework.data import (
    array_record_source,  # noqa: F401  (registers the array_record dataset)
    ops,  # noqa: F401  (registers the preprocess ops)
    synthetic,  # noqa: F401  (registers the synthetic datasets)
    synthetic_captions,  # noqa: F401  (registers synthetic_captions and the tokenize op)
    tfds_source,  # noqa: F401  (registers the tfds dataset)
)
from framework.data.spec import CorruptRecordError, DatasetSpec, resolve_data_dir

__all__ = ["CorruptRecordError", "DatasetSpec", "resolve_data_dir"]
