"""Reading and writing other libraries' checkpoints: Hugging Face `transformers` directories
(config.json + model.safetensors) and timm `.safetensors` state dicts.

`safetensors_io` reads and writes the files (numpy, no torch); `mapping` holds the rule
machinery that renames and re-lays parameters in both directions; `vit_blocks`, `hf_vit` and
`timm_vit` are the plain-ViT mappings; `hub` detects a checkpoint's kind and dispatches to
the mapping registered for it (a project registers its own: SigLIP, ViViT).
"""

from framework.interop import hf_vit  # noqa: F401  (registers model_type "vit")
