"""Hugging Face `transformers` checkpoint directories and `.safetensors` state dicts.

    load_hf(DIR)        -> Converted {our key: array} (DIR holds config.json, model.safetensors)
    save_hf(flat, DIR)  writes config.json + model.safetensors that `from_pretrained` loads
    load_state_dict(FILE) -> Converted, from a timm ViT (or open_clip SigLIP) .safetensors
    save_timm(flat, FILE) writes our ViT as a timm state dict

A `HubModel` per transformers model_type says how its tensors map onto ours (`mapping.Rule`
lists) and back; `register` adds one. The plain ViT's is registered by framework.interop
.hf_vit; a project registers its own (SigLIP and ViViT do), so a checkpoint of
such a model type needs that project imported.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from framework.interop import mapping, safetensors_io
from framework.registry import ConfigError

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
_MODELS: dict[str, HubModel] = {}
_STATE_DICTS: dict[str, Callable[[list[str], str], list]] = {}
log = logging.getLogger(__name__)


class HubModel:
    """How one transformers model family maps onto a Tessera model (subclass and
    `register`). `model_types`: the config.json model_type values it reads."""

    model_types: tuple[str, ...] = ()
    description: str = ""

    def import_rules(self, config: dict, keys: Sequence[str]) -> list[mapping.Rule]:
        """Returns the rules for a checkpoint of `config` (config.json) holding `keys`."""
        raise NotImplementedError

    def matches(self, flat: Mapping[str, np.ndarray]) -> bool:
        """True when our flat params `flat` are a model this family can hold."""
        raise NotImplementedError

    def export(self, flat: Mapping[str, np.ndarray], **hints: Any) -> tuple[dict, dict]:
        """Returns ({their key: array}, config.json dict) for our flat params."""
        raise NotImplementedError


def register(model: HubModel) -> HubModel:
    """Registers `model` for each of its model_types; returns it."""
    for name in model.model_types:
        _MODELS[name] = model
    return model


def model_types() -> list[str]:
    """Returns the transformers model_type values that can be read now, sorted."""
    return sorted(_MODELS)


def is_hf_dir(path: str) -> bool:
    """True when `path` is a directory holding config.json and model.safetensors."""
    return all(os.path.isfile(os.path.join(path, f)) for f in (CONFIG_FILE, WEIGHTS_FILE))


def read_config(path: str) -> dict:
    """Returns the config.json of the transformers directory `path` as a dict."""
    file = os.path.join(path, CONFIG_FILE)
    try:
        with open(file) as f:
            config = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"{file}: cannot read it as JSON ({e}).") from e
    if not isinstance(config, dict):
        raise ConfigError(f"{file}: not a transformers config (a JSON object).")
    return config


def load_hf(path: str) -> mapping.Converted:
    """Reads the transformers checkpoint directory `path` into our names.

    Returns a Converted dict. Raises ConfigError (one line) for a model_type no registered
    HubModel reads, and MappingError naming the keys for missing or mis-shaped parameters.
    """
    config = read_config(path)
    model_type = config.get("model_type")
    if model_type not in _MODELS:
        raise ConfigError(
            f"{os.path.join(path, CONFIG_FILE)}: model_type {model_type!r} is not one Tessera "
            f"reads ({', '.join(model_types())}; SigLIP and ViViT need their project imported, "
            "e.g. config.project='siglip').")
    _note_settings(config, path)
    tensors = safetensors_io.read_safetensors(os.path.join(path, WEIGHTS_FILE))
    try:
        rules = _MODELS[model_type].import_rules(config, list(tensors))
    except (KeyError, mapping.MappingError) as e:
        raise mapping.MappingError(f"{path}: not a {model_type!r} checkpoint as config.json "
                                   f"says ({e}).") from None
    return mapping.import_params(tensors, rules, path)


def _note_settings(config: dict, path: str) -> None:
    """Logs the config.json settings our model must share to reproduce the checkpoint's
    outputs (the exact GELU, another LayerNorm epsilon), as model fields to set."""
    settings = {**config.get("vision_config", {}), **config}
    if settings.get("hidden_act") == "gelu":
        log.warning("%s: hidden_act 'gelu' is the exact GELU; set the model's "
                    "mlp_activation='gelu_exact' to reproduce its outputs.", path)
    eps = settings.get("layer_norm_eps", 1e-6)
    if eps != 1e-6:
        log.warning("%s: layer_norm_eps=%g; set the model's layer_norm_eps=%g to reproduce its "
                    "outputs.", path, eps, eps)


def save_hf(flat: Mapping[str, Any], path: str, **hints: Any) -> str:
    """Writes our flat params `flat` as a transformers directory `path` (created; must not
    exist). `hints`: facts the params cannot tell (the model's mlp_activation and
    layer_norm_eps; ViViT: num_frames). Returns the
    model_type written. Raises MappingError when no registered family holds the model."""
    flat = {k: np.asarray(v) for k, v in flat.items()}
    found = [m for m in dict.fromkeys(_MODELS.values()) if m.matches(flat)]
    if not found:
        raise mapping.MappingError(
            "no transformers model family holds these params (known: "
            f"{', '.join(m.description for m in dict.fromkeys(_MODELS.values()))}); top-level "
            f"names: {', '.join(sorted({k.split('/')[0] for k in flat}))}.")
    tensors, config = found[0].export(flat, **hints)
    config.setdefault("torch_dtype", "float32")
    os.makedirs(path)
    safetensors_io.write_safetensors(os.path.join(path, WEIGHTS_FILE), tensors)
    with open(os.path.join(path, CONFIG_FILE), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
    return config["model_type"]


def register_state_dict(prefix: str, import_rules: Callable[[list[str], str], list]) -> None:
    """Registers the rules of a state-dict family whose keys start with `prefix` (e.g.
    open_clip's "visual.trunk."): `import_rules(keys, source)` -> Rule list."""
    _STATE_DICTS[prefix] = import_rules


def load_state_dict(path: str) -> mapping.Converted:
    """Reads a `.safetensors` state dict into our names: a family registered for its keys'
    prefix, else a timm ViT. Returns a Converted."""
    from framework.interop import timm_vit

    tensors = safetensors_io.read_safetensors(path)
    keys = list(tensors)
    rules = next((fn for prefix, fn in _STATE_DICTS.items()
                  if any(k.startswith(prefix) for k in keys)), timm_vit.import_rules)
    return mapping.import_params(tensors, rules(keys, path), path)


def save_timm(flat: Mapping[str, Any], path: str) -> None:
    """Writes our ViT's flat params as a timm ViT state dict (`.safetensors`) at `path`."""
    from framework.interop import timm_vit

    flat = {k: np.asarray(v) for k, v in flat.items()}
    safetensors_io.write_safetensors(path, mapping.export_params(
        flat, timm_vit.export_rules(flat), "a timm ViT"))
