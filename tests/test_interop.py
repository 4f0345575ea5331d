"""Checkpoint interop (framework.interop): transformers, timm and open_clip formats.

The reference files in tests/data/interop were written by `python -m tools.interop_check
--size tiny --write_references tests/data/interop` from each library's own random tiny model
(or, for open_clip, from our tiny .npz read by open_clip's big_vision loader) with that
library's outputs on a recorded input; here Tessera loads them without torch and must
reproduce those outputs. Round trips check every mapping both ways.
"""

import json
import os
import shutil

import jax
import numpy as np
import pytest
from flax import linen as nn

import projects.siglip  # noqa: F401  (registers the transformers SigLIP mapping)
import projects.vivit  # noqa: F401  (registers the transformers ViViT mapping)
from framework import pretrained
from framework.interop import hub, mapping, safetensors_io
from framework.models.vit import ViT
from framework.registry import ConfigError
from projects.image_text.text_transformer import TextTransformer
from tools import convert_checkpoint, interop_check

DATA = os.path.join(os.path.dirname(__file__), "data", "interop")
TINY = interop_check.SIZES["tiny"]
# Reference name -> (our model kind, the file Tessera reads, our_model settings). The Hub's
# ViTs use LayerNorm epsilon 1e-12; open_clip runs SigLIP with the exact GELU.
REFERENCES = {
    "transformers_vit": ("vit", "transformers_vit", {"eps": 1e-12}),
    "transformers_siglip": ("siglip", "transformers_siglip", {}),
    "transformers_vivit": ("vivit", "transformers_vivit", {}),
    "timm_vit": ("vit", "timm_vit.safetensors", {}),
    "open_clip_siglip": ("siglip", "open_clip_siglip.safetensors", {"activation": "gelu_exact"}),
    "open_clip_siglip_npz": ("siglip", "open_clip_siglip.params.npz",
                             {"activation": "gelu_exact"}),
}


def shapes(model, inputs):
    """The model's abstract params (ShapeDtypeStructs)."""
    return nn.unbox(jax.eval_shape(lambda: model.init(jax.random.key(0), inputs)))["params"]


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_reference_outputs(name):
    """Ours, loaded from the library's checkpoint, reproduces the library's outputs."""
    kind, file, settings = REFERENCES[name]
    with np.load(os.path.join(DATA, f"{name}.expected.npz")) as data:
        recorded = {k: data[k] for k in data.files}
    inputs = {k.split("/", 1)[1]: v for k, v in recorded.items() if k.startswith("input/")}
    inputs = inputs.get("input", inputs)
    model, _ = interop_check.our_model(kind, TINY, **settings)
    params, report = interop_check.load_ours(model, inputs, os.path.join(DATA, file))
    ours = interop_check.run_ours(model, params, inputs)
    for key, value in recorded.items():
        if key.startswith("output/"):
            np.testing.assert_allclose(ours[key.split("/", 1)[1]], value, atol=1e-4, rtol=0)
    if not name.endswith("_npz"):  # Another library's layout: heads split, sources named.
        assert "reshaped" in report and "<- " in report


def random_flat(model, inputs):
    """Random flat params of `model` (numpy)."""
    return interop_check.our_params(model, inputs, seed=3)


def assert_same(flat, params):
    loaded = pretrained.flatten_tree(params)
    assert sorted(loaded) == sorted(flat)
    for key, value in flat.items():
        np.testing.assert_array_equal(np.asarray(loaded[key]), value, err_msg=key)


def tiny_models():
    """(name, model, input, export hints) for every transformers family we write."""
    tower = dict(hidden_size=8, depth=2, num_heads=2, mlp_dim=16)
    image = np.zeros((1, 8, 8, 3), np.float32)
    vit, _ = interop_check.our_model("vit", TINY)
    siglip, batch = interop_check.our_model("siglip", TINY)
    vivit, video = interop_check.our_model("vivit", TINY)
    return [
        ("vit", vit, image, {}),
        ("siglip", siglip, batch, {}),
        ("vivit", vivit, video, {"num_frames": TINY["frames"]}),
        ("siglip_vision_model", ViT(pool_type="map", patch_size=(4, 4), **tower), image, {}),
        ("siglip_text_model", TextTransformer(num_classes=4, vocab_size=20, **tower),
         np.zeros((1, 5), np.int32), {}),
    ]


@pytest.mark.parametrize("case", tiny_models(), ids=lambda c: c[0])
def test_hf_round_trip(case, tmp_path):
    """ours -> transformers directory -> ours gives the same params; config.json names the
    family."""
    model_type, model, inputs, hints = case
    flat = random_flat(model, inputs)
    assert hub.save_hf(flat, str(tmp_path / "hf"), **hints) == model_type
    with open(tmp_path / "hf" / "config.json") as f:
        assert json.load(f)["model_type"] == model_type
    params, report = pretrained.load_params(shapes(model, inputs), {"path": str(tmp_path / "hf")})
    assert_same(flat, params)
    assert report.count("init") == 0 and not report.unused


@pytest.mark.parametrize("pool", ["token", "map"])
def test_timm_round_trip(pool, tmp_path):
    """ours -> timm .safetensors -> ours (class token + head, or SigLIP's MAP trunk)."""
    model = ViT(num_classes=3 if pool == "token" else None, pool_type=pool, patch_size=(4, 4),
                hidden_size=8, depth=2, num_heads=2, mlp_dim=16)
    image = np.zeros((1, 8, 8, 3), np.float32)
    flat = random_flat(model, image)
    hub.save_timm(flat, str(tmp_path / "m.safetensors"))
    params, _ = pretrained.load_params(shapes(model, image),
                                       {"path": str(tmp_path / "m.safetensors")})
    assert_same(flat, params)


def test_scanned_model_loads_hf_checkpoint():
    """A scanned ViT takes the same checkpoint (heads split on the stacked layer axis)."""
    model, image = interop_check.our_model("vit", TINY)
    path = os.path.join(DATA, "transformers_vit")
    plain, _ = pretrained.load_params(shapes(model, image), {"path": path})
    scanned, report = pretrained.load_params(shapes(model.clone(scan=True), image),
                                             {"path": path})
    assert report.count("init") == 0
    stacked = pretrained.flatten_tree(scanned)
    unstacked = pretrained.flatten_tree(plain)
    key = "MultiHeadDotProductAttention_0/query/kernel"
    np.testing.assert_array_equal(stacked[f"Transformer/encoderblock/{key}"][1],
                                  unstacked[f"Transformer/encoderblock_1/{key}"])


def copy_reference(name, tmp_path):
    target = tmp_path / name
    shutil.copytree(os.path.join(DATA, name), target)
    return target


def edit_tensors(path, change):
    tensors = safetensors_io.read_safetensors(str(path))
    change(tensors)
    safetensors_io.write_safetensors(str(path), tensors)


def test_unknown_model_type_is_one_line(tmp_path):
    target = copy_reference("transformers_vit", tmp_path)
    config = json.loads((target / "config.json").read_text())
    (target / "config.json").write_text(json.dumps(dict(config, model_type="bert")))
    with pytest.raises(ConfigError, match="model_type 'bert' is not one Tessera reads") as e:
        pretrained.load_flat_params(str(target))
    assert "\n" not in str(e.value)


def test_config_of_another_model_type_names_missing_keys(tmp_path):
    """config.json says vit but the weights are SigLIP's."""
    target = copy_reference("transformers_siglip", tmp_path)
    vit_config = (tmp_path.parent / "vit.json")
    shutil.copy(os.path.join(DATA, "transformers_vit", "config.json"), vit_config)
    shutil.copy(vit_config, target / "config.json")
    with pytest.raises(ConfigError, match="not a 'vit' checkpoint as config.json says"):
        pretrained.load_flat_params(str(target))


def test_partial_checkpoint_names_missing_keys(tmp_path):
    target = copy_reference("transformers_vit", tmp_path)
    edit_tensors(target / "model.safetensors", lambda t: t.pop("vit.layernorm.weight"))
    with pytest.raises(mapping.MappingError, match="lacks 1 parameters .*vit.layernorm.weight"):
        pretrained.load_flat_params(str(target))


def test_wrong_shapes_name_the_keys(tmp_path):
    """A checkpoint of another width than the config's model fails before any training."""
    model = ViT(num_classes=3, patch_size=(4, 4), hidden_size=16, depth=2, num_heads=2)
    image = np.zeros((1, 8, 8, 3), np.float32)
    with pytest.raises(pretrained.IncompatibleCheckpointError, match="embedding/kernel"):
        pretrained.load_params(shapes(model, image),
                               {"path": os.path.join(DATA, "transformers_vit")})


def test_bad_layout_and_unknown_keys(tmp_path):
    """A fused qkv that does not split in 3 is named; keys no rule maps are reported."""
    path = tmp_path / "m.safetensors"
    shutil.copy(os.path.join(DATA, "timm_vit.safetensors"), path)
    edit_tensors(path, lambda t: t.update({"extra.weight": np.ones(2, np.float32)}))
    model, image = interop_check.our_model("vit", TINY)
    _, report = pretrained.load_params(shapes(model, image), {"path": str(path)})
    assert report.unused == ["extra.weight"]
    edit_tensors(path, lambda t: t.update({"blocks.0.attn.qkv.weight": np.ones((4, 8),
                                                                                np.float32)}))
    with pytest.raises(mapping.MappingError, match="blocks.0.attn.qkv.weight: 4 rows"):
        pretrained.load_flat_params(str(path))


def test_export_errors_name_the_problem(tmp_path):
    gap = ViT(num_classes=3, pool_type="gap", patch_size=(4, 4), hidden_size=8, depth=1,
              num_heads=2)
    flat = random_flat(gap, np.zeros((1, 8, 8, 3), np.float32))
    with pytest.raises(mapping.MappingError, match="no transformers model family"):
        hub.save_hf(flat, str(tmp_path / "a"))
    vivit, video = interop_check.our_model("vivit", TINY)
    with pytest.raises(mapping.MappingError, match="--num_frames"):
        hub.save_hf(random_flat(vivit, video), str(tmp_path / "b"))


def test_convert_checkpoint_cli(tmp_path, capsys):
    """transformers -> .npz (our names) -> transformers and timm, with the same params."""
    npz, hf, timm = (str(tmp_path / n) for n in ("vit.npz", "hf", "vit.safetensors"))
    convert_checkpoint.main(["--input", os.path.join(DATA, "transformers_vit"), "--output", npz])
    convert_checkpoint.main(["--input", npz, "--output", hf, "--output_format", "hf",
                             "--mlp_activation", "gelu_exact", "--layer_norm_eps", "1e-12"])
    convert_checkpoint.main(["--input", npz, "--output", timm])
    assert "model_type 'vit'" in capsys.readouterr().out
    with open(os.path.join(hf, "config.json")) as f:
        config = json.load(f)
    assert (config["hidden_act"], config["layer_norm_eps"]) == ("gelu", 1e-12)
    reference = hub.load_hf(os.path.join(DATA, "transformers_vit"))
    for path in (hf, timm):
        again = pretrained.load_flat_params(path)
        assert sorted(again) == sorted(reference)
        for key in reference:
            np.testing.assert_allclose(again[key], reference[key], atol=1e-7, err_msg=key)
    with pytest.raises(FileExistsError):
        convert_checkpoint.main(["--input", npz, "--output", hf, "--output_format", "hf"])


def test_convert_hf_checkpoint_for_a_config(tmp_path, capsys):
    """The config.init_from route (format detection, default adapter, load report) maps the
    Hub-style ViT onto a config's model: heads split, position embedding resized."""
    config = tmp_path / "hub_vit.py"
    config.write_text(
        "from configs.synthetic_shapes_vit import get_config as base\n\n\n"
        "def get_config(arg=None):\n"
        "    c = base('test')\n"
        "    c.model.update(hidden_size=8, mlp_dim=16, num_classes=3, pool_type='token',\n"
        "                   mlp_activation='gelu_exact', layer_norm_eps=1e-12)\n"
        "    return c\n")
    convert_checkpoint.main(["--input", os.path.join(DATA, "transformers_vit"), "--config",
                             str(config), "--output", str(tmp_path / "wd"), "--dry_run"])
    out = capsys.readouterr().out
    assert "reshaped (8, 8) -> (8, 2, 4) <- transposed from vit." in out
    assert "resized (1, 4, 8) -> " in out and " 0 init;" in out


def test_hub_image_vit_initialises_vivit():
    """The "vivit.from_vit" adapter takes a transformers ViT as it takes an .npz one."""
    model, video = interop_check.our_model("vivit", TINY)
    _, report = pretrained.load_params(shapes(model, video), {
        "path": os.path.join(DATA, "transformers_vit"), "adapter": "vivit.from_vit"})
    notes = dict((key, note) for key, note, _, _ in report.rows)
    assert notes["embedding/kernel"].startswith("inflated (4, 4, 3, 8) -> (2, 4, 4, 3, 8)")
    assert notes["pos_embedding"].startswith("repeated over 2 frames")
    assert notes["Transformer/encoderblock_1/MultiHeadDotProductAttention_0/out/kernel"] \
        .startswith("reshaped (8, 8) -> (2, 4, 8)")
    assert report.count("init") == 2  # The head (a new dataset's classes).
