"""Checks Tessera's checkpoint interop against the other libraries' own forward passes.

    pip install -e ".[compare]"     # torch, timm, transformers, open_clip (CPU is enough)
    python -m tools.interop_check [--size full|tiny] [--only NAME ...] [--markdown FILE]
    python -m tools.interop_check --size tiny --write_references tests/data/interop

For each model and direction the other library's model gets random weights (nothing is
downloaded), is converted, and both run on the same random input:
  import: theirs -> their checkpoint format -> `config.init_from` loading -> ours
  export: ours -> `framework.interop` writer -> their own loader -> theirs
Models (full size / tiny): transformers ViT-B/16 (classification head), SigLIP B/16 (both
towers, logit scale and bias), ViViT-B/16x2 model 1 (32 frames); timm vit_base_patch16_224;
open_clip ViT-B-16-SigLIP (export through big_vision .npz, which open_clip's own
`load_big_vision_weights` reads). Every output is compared: max |difference| and cosine
similarity; float32 passes at max |difference| <= 1e-4.

`--write_references DIR` writes, per model, the library's random tiny checkpoint in its own
format plus its input and outputs (`NAME.npz`), which tests/test_interop.py checks Tessera
against without torch.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable

import numpy as np

TOLERANCE = 1e-4
SIZES = {
    # hidden, depth, heads, mlp, image, patch, classes, vocab, text length, frames, tubelet t
    "full": dict(hidden=768, depth=12, heads=12, mlp=3072, image=224, patch=16, classes=1000,
                 vocab=32000, text_len=64, frames=32, tubelet=2),
    "tiny": dict(hidden=8, depth=2, heads=2, mlp=16, image=8, patch=4, classes=3, vocab=20,
                 text_len=6, frames=4, tubelet=2),
}


# ---------------------------------------------------------------------------------------
# Helpers.


def randomize(module, seed: int) -> None:
    """Gives every parameter of torch `module` random values (LayerNorm scales around 1), so
    no mapping can pass on zero biases or unit scales."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=gen) * 0.02
            if name.endswith(("norm1.weight", "norm2.weight", "norm.weight", "layernorm.weight",
                              "layernorm_before.weight", "layernorm_after.weight",
                              "layer_norm1.weight", "layer_norm2.weight", "ln_1.weight",
                              "ln_2.weight", "ln_final.weight", "final_layer_norm.weight",
                              "post_layernorm.weight")):
                p.copy_(1.0 + 10 * noise)
            elif name in ("logit_scale", "logit_bias"):
                p.copy_(p + noise)
            else:
                p.copy_(noise)


def our_params(model, inputs, seed: int) -> dict:
    """Returns random flat params {key: np.ndarray} of our flax `model` for `inputs` (drawn
    with numpy from the abstract init: no compile). Scales are 1 + noise, `t` log 10, `b` -10."""
    import flax.linen as nn
    import jax

    from framework import pretrained

    shapes = nn.unbox(jax.eval_shape(lambda: model.init(jax.random.key(0), inputs)))["params"]
    rng = np.random.default_rng(seed)
    flat = {}
    for key, spec in pretrained.flatten_tree(shapes).items():
        value = rng.normal(0.0, 0.02, spec.shape).astype(np.float32)
        if key.endswith("/scale"):
            value += 1.0
        elif key == "t":
            value += np.log(10.0)
        elif key == "b":
            value -= 10.0
        flat[key] = value
    return flat


def load_ours(model, inputs, path: str) -> tuple[dict, str]:
    """Loads checkpoint `path` into our `model` as `config.init_from` does; returns (param
    tree, load report text). Raises if any parameter stayed at init."""
    import flax.linen as nn
    import jax

    from framework import pretrained

    shapes = nn.unbox(jax.eval_shape(lambda: model.init(jax.random.key(0), inputs)))["params"]
    params, report = pretrained.load_params(shapes, {"path": path})
    if report.count("init") or report.unused:
        raise AssertionError("incomplete load:\n" + pretrained.format_report(report))
    return params, pretrained.format_report(report)


def compare(ours: dict, theirs: dict) -> dict:
    """Returns {output name: (max |difference|, cosine)} over the outputs both hold."""
    out = {}
    for name, a in theirs.items():
        a = np.asarray(a, np.float64).ravel()
        b = np.asarray(ours[name], np.float64).ravel()
        cosine = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-30))
        out[name] = (float(np.abs(a - b).max()), cosine)
    return out


def to_numpy(x) -> np.ndarray:
    """torch tensor -> float32 numpy."""
    return x.detach().float().numpy()


# ---------------------------------------------------------------------------------------
# Our side (no torch: the suite uses these with the reference files).


def our_model(kind: str, s: dict, seed: int = 1, eps: float = 1e-6,
              activation: str = "gelu_tanh"):
    """Returns (our flax model, a random input for it) for `kind` 'vit', 'siglip' or 'vivit'
    at sizes `s` (an entry of SIZES); `eps`: the ViT's LayerNorm epsilon; `activation`:
    SigLIP's MLP activation (the ViT's is the exact GELU)."""
    rng = np.random.default_rng(seed)
    tower = dict(hidden_size=s["hidden"], depth=s["depth"], num_heads=s["heads"],
                 mlp_dim=s["mlp"])
    image = rng.normal(size=(2, s["image"], s["image"], 3)).astype(np.float32)
    if kind == "vit":
        from framework.models.vit import ViT

        # The exact GELU, as the Hub's ViT checkpoints and timm's ViTs.
        return ViT(num_classes=s["classes"], patch_size=(s["patch"],) * 2,
                   mlp_activation="gelu_exact", layer_norm_eps=eps, **tower), image
    if kind == "siglip":
        from projects.image_text.two_tower import TwoTower

        tower = dict(tower, mlp_activation=activation)
        model = TwoTower(image=dict(tower, patch_size=(s["patch"],) * 2, pool_type="map"),
                         text=dict(tower, vocab_size=s["vocab"], pool_type="last"),
                         out_dim=(None, s["hidden"]), temperature_init=10.0, bias_init=-10.0)
        text = rng.integers(0, s["vocab"], (2, s["text_len"])).astype(np.int32)
        return model, {"image": image, "text": text}
    from projects.vivit.backbone import ViViT

    video = rng.normal(size=(1, s["frames"], s["image"], s["image"], 3)).astype(np.float32)
    return ViViT(variant="spatio_temporal", num_classes=s["classes"],
                 patch_size=(s["tubelet"], s["patch"], s["patch"]), **tower), video


_APPLY: dict = {}


def run_ours(model, params, inputs) -> dict[str, np.ndarray]:
    """Runs our `model` on `inputs`; returns the outputs the libraries report: 'logits', or
    for SigLIP 'image_embeds', 'text_embeds' and 'logits_per_image'."""
    import jax

    # One compile per model definition (flax modules print all their fields).
    apply = _APPLY.setdefault(repr(model), jax.jit(model.apply))
    out = apply({"params": params}, inputs)
    if not isinstance(out, dict):
        return {"logits": np.asarray(out)}
    zimg, ztxt = np.asarray(out["zimg"]), np.asarray(out["ztxt"])
    return {"image_embeds": zimg, "text_embeds": ztxt,
            "logits_per_image": zimg @ ztxt.T * float(out["t"]) + float(out["b"])}


# ---------------------------------------------------------------------------------------
# Their side: each case holds our model and input, their builder and runner.


def vit_case(s: dict) -> dict:
    """transformers ViTForImageClassification <-> our ViT."""
    import torch
    import transformers

    ours, image = our_model("vit", s, eps=1e-12)
    config = transformers.ViTConfig(
        hidden_size=s["hidden"], num_hidden_layers=s["depth"], num_attention_heads=s["heads"],
        intermediate_size=s["mlp"], image_size=s["image"], patch_size=s["patch"],
        num_labels=s["classes"])  # The Hub's ViT settings: exact GELU, LayerNorm eps 1e-12.
    return dict(
        ours=ours, our_input=image, model_class=transformers.ViTForImageClassification,
        export_hints={"mlp_activation": "gelu_exact", "layer_norm_eps": 1e-12},
        build=lambda: transformers.ViTForImageClassification(config),
        run_theirs=lambda m: {"logits": to_numpy(m(pixel_values=torch.from_numpy(
            image.transpose(0, 3, 1, 2))).logits)})


def siglip_case(s: dict) -> dict:
    """transformers SiglipModel <-> our two-tower SigLIP."""
    import torch
    import transformers

    ours, batch = our_model("siglip", s)
    common = dict(hidden_size=s["hidden"], num_hidden_layers=s["depth"],
                  num_attention_heads=s["heads"], intermediate_size=s["mlp"])
    config = transformers.SiglipConfig(
        text_config=dict(common, vocab_size=s["vocab"], max_position_embeddings=s["text_len"],
                         projection_size=s["hidden"], pad_token_id=1, bos_token_id=None,
                         eos_token_id=1),
        vision_config=dict(common, image_size=s["image"], patch_size=s["patch"]))

    def run_theirs(m):
        out = m(input_ids=torch.from_numpy(batch["text"]).long(),
                pixel_values=torch.from_numpy(batch["image"].transpose(0, 3, 1, 2)))
        return {"image_embeds": to_numpy(out.image_embeds),
                "text_embeds": to_numpy(out.text_embeds),
                "logits_per_image": to_numpy(out.logits_per_image)}

    return dict(ours=ours, our_input=batch, model_class=transformers.SiglipModel,
                build=lambda: transformers.SiglipModel(config), run_theirs=run_theirs)


def vivit_case(s: dict) -> dict:
    """transformers VivitForVideoClassification <-> our ViViT model 1."""
    import torch
    import transformers

    tubelet = (s["tubelet"], s["patch"], s["patch"])
    ours, video = our_model("vivit", s)
    config = transformers.VivitConfig(
        hidden_size=s["hidden"], num_hidden_layers=s["depth"], num_attention_heads=s["heads"],
        intermediate_size=s["mlp"], image_size=s["image"], num_frames=s["frames"],
        tubelet_size=list(tubelet), num_labels=s["classes"])
    return dict(
        ours=ours, our_input=video, model_class=transformers.VivitForVideoClassification,
        build=lambda: transformers.VivitForVideoClassification(config),
        export_hints={"num_frames": s["frames"]},
        run_theirs=lambda m: {"logits": to_numpy(m(pixel_values=torch.from_numpy(
            video.transpose(0, 1, 4, 2, 3))).logits)})


def timm_case(s: dict, size: str) -> dict:
    """timm vit_base_patch16_224 (or a tiny VisionTransformer) <-> our ViT."""
    import timm
    import torch

    ours, image = our_model("vit", s)
    kwargs = dict(num_classes=s["classes"])
    if size == "full":
        build = lambda: timm.create_model("vit_base_patch16_224", pretrained=False, **kwargs)  # noqa: E731
    else:
        build = lambda: timm.models.vision_transformer.VisionTransformer(  # noqa: E731
            img_size=s["image"], patch_size=s["patch"], embed_dim=s["hidden"], depth=s["depth"],
            num_heads=s["heads"], mlp_ratio=s["mlp"] / s["hidden"], **kwargs)
    return dict(ours=ours, our_input=image, build=build,
                run_theirs=lambda m: {"logits": to_numpy(m(torch.from_numpy(
                    image.transpose(0, 3, 1, 2))))})


def open_clip_case(s: dict, size: str) -> dict:
    """open_clip ViT-B-16-SigLIP (or a tiny custom config) reading our big_vision .npz."""
    import open_clip
    import torch

    # open_clip runs both towers with the exact GELU (big_vision trained them with tanh's).
    ours, batch = our_model("siglip", s, activation="gelu_exact")
    case = dict(siglip_case(s), ours=ours, our_input=batch)
    if size == "full":
        name, cfg = "ViT-B-16-SigLIP", None
    else:
        name = "tessera-tiny-siglip"
        cfg = {"embed_dim": s["hidden"], "init_logit_bias": -10, "custom_text": True,
               "vision_cfg": {"image_size": 224, "timm_model_name": "vit_base_patch16_siglip_224",
                              "timm_model_pretrained": False, "timm_pool": "map",
                              "timm_proj": "none"},
               "text_cfg": {"context_length": s["text_len"], "vocab_size": s["vocab"],
                            "width": s["hidden"], "heads": s["heads"], "layers": s["depth"],
                            "mlp_ratio": s["mlp"] / s["hidden"], "no_causal_mask": True,
                            "proj_bias": True, "pool_type": "last",
                            "norm_kwargs": {"eps": 1e-6}}}

    def build():
        if cfg is None:
            return open_clip.create_model(name, pretrained=None)
        import timm

        model = open_clip.model.CustomTextCLIP(**{k: v for k, v in cfg.items()
                                                  if k not in ("custom_text",)})
        model.visual.trunk = timm.models.vision_transformer.VisionTransformer(
            img_size=s["image"], patch_size=s["patch"], embed_dim=s["hidden"],
            depth=s["depth"], num_heads=s["heads"], mlp_ratio=s["mlp"] / s["hidden"],
            class_token=False, global_pool="map", num_classes=0)
        return model

    def run_theirs(m):
        image = m.encode_image(torch.from_numpy(batch["image"].transpose(0, 3, 1, 2)),
                               normalize=True)
        text = m.encode_text(torch.from_numpy(batch["text"]).long(), normalize=True)
        logits = image @ text.T * m.logit_scale.exp() + m.logit_bias
        return {"image_embeds": to_numpy(image), "text_embeds": to_numpy(text),
                "logits_per_image": to_numpy(logits)}

    return dict(case, build=build, run_theirs=run_theirs, model_class=None)


CASES: dict[str, Callable] = {
    "transformers_vit": lambda s, size: vit_case(s),
    "transformers_siglip": lambda s, size: siglip_case(s),
    "transformers_vivit": lambda s, size: vivit_case(s),
    "timm_vit": timm_case,
    "open_clip_siglip": open_clip_case,
}
LABELS = {
    "transformers_vit": ("transformers ViTForImageClassification", "ViT-B/16", "hf"),
    "transformers_siglip": ("transformers SiglipModel", "SigLIP B/16", "hf"),
    "transformers_vivit": ("transformers VivitForVideoClassification", "ViViT-B/16x2 model 1",
                           "hf"),
    "timm_vit": ("timm", "vit_base_patch16_224", "timm"),
    "open_clip_siglip": ("open_clip", "ViT-B-16-SigLIP", "open_clip"),
}


# ---------------------------------------------------------------------------------------
# Directions.


def write_theirs(name: str, model, path: str) -> str:
    """Writes their `model` in its library's checkpoint format under `path`; returns the
    path Tessera reads."""
    from safetensors.torch import save_file

    kind = LABELS[name][2]
    if kind == "hf":
        model.save_pretrained(path, safe_serialization=True)
        return path
    if kind in ("timm", "open_clip"):  # A state dict.
        file = path + ".safetensors"
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, file)
        return file


def check_import(name: str, case: dict, tmp: str) -> dict:
    """theirs (random) -> their format -> ours; returns compare()."""
    import torch

    torch.manual_seed(0)
    theirs = case["build"]().eval()
    randomize(theirs, 0)
    path = write_theirs(name, theirs, os.path.join(tmp, f"{name}_theirs"))
    params, _ = load_ours(case["ours"], case["our_input"], path)
    with torch.no_grad():
        expected = case["run_theirs"](theirs)
    return compare(run_ours(case["ours"], params, case["our_input"]), expected)


def check_export(name: str, case: dict, tmp: str) -> dict:
    """ours (random) -> their format -> their loader; returns compare()."""
    import torch

    from framework import pretrained
    from framework.interop import hub

    flat = our_params(case["ours"], case["our_input"], seed=1)
    kind = LABELS[name][2]
    if kind == "hf":
        path = os.path.join(tmp, f"{name}_ours")
        hub.save_hf(flat, path, **case.get("export_hints", {}))
        theirs, info = case["model_class"].from_pretrained(path, output_loading_info=True)
        problems = {k: v for k, v in info.items() if v and k != "error_msgs"}
        if problems:
            raise AssertionError(f"from_pretrained: {problems}")
    elif kind == "timm":
        from safetensors.torch import load_file

        path = os.path.join(tmp, f"{name}_ours.safetensors")
        hub.save_timm(flat, path)
        theirs = case["build"]()
        theirs.load_state_dict(load_file(path), strict=True)
    else:
        import open_clip

        path = os.path.join(tmp, f"{name}_ours.npz")
        pretrained.save_npz(path, pretrained.unflatten(flat))
        theirs = case["build"]()
        open_clip.convert.load_big_vision_weights(theirs, path)
    theirs.eval()
    with torch.no_grad():
        expected = case["run_theirs"](theirs)
    params = pretrained.unflatten(flat)
    return compare(run_ours(case["ours"], params, case["our_input"]), expected)


def record(model, case: dict, path: str) -> str:
    """Writes the case's input and their `model`'s outputs on it to `path` (.npz)."""
    import torch

    with torch.no_grad():
        outputs = case["run_theirs"](model)
    inputs = case["our_input"]
    inputs = inputs if isinstance(inputs, dict) else {"input": inputs}
    np.savez(path, **{f"input/{k}": v for k, v in inputs.items()},
             **{f"output/{k}": v for k, v in outputs.items()})
    return path


def write_reference(name: str, case: dict, directory: str) -> list[str]:
    """Writes the library's random tiny checkpoint in its format (NAME/ or NAME.safetensors)
    and its outputs (NAME.expected.npz) to `directory`; for open_clip also our random tiny
    .npz (NAME.params.npz) and open_clip's outputs after its own loader read it
    (NAME_npz.expected.npz). Returns the files written."""
    import torch

    from framework import pretrained

    torch.manual_seed(0)
    theirs = case["build"]().eval()
    randomize(theirs, 0)
    target = os.path.join(directory, name)
    shutil.rmtree(target, ignore_errors=True)
    path = write_theirs(name, theirs, target)
    files = [path]
    if os.path.isdir(path):  # Keep only what Tessera reads.
        files = [os.path.join(path, f) for f in ("config.json", "model.safetensors")]
        for extra in set(os.listdir(path)) - {"config.json", "model.safetensors"}:
            os.remove(os.path.join(path, extra))
    files.append(record(theirs, case, os.path.join(directory, f"{name}.expected.npz")))
    if LABELS[name][2] == "open_clip":
        import open_clip

        checkpoint = os.path.join(directory, f"{name}.params.npz")
        flat = our_params(case["ours"], case["our_input"], seed=1)
        pretrained.save_npz(checkpoint, pretrained.unflatten(flat))
        open_clip.convert.load_big_vision_weights(theirs, checkpoint)
        files += [checkpoint, record(theirs.eval(), case,
                                     os.path.join(directory, f"{name}_npz.expected.npz"))]
    return files


# ---------------------------------------------------------------------------------------


def markdown(rows: list[tuple], command: str, seconds: float) -> str:
    """The results table as Markdown."""
    lines = ["# Checkpoint interop: Tessera vs the libraries' own forward passes", "",
             f"Produced by `{command}` ({seconds:.0f} s on this machine's CPU, float32).", "",
             "Random weights (no download; every parameter drawn, LayerNorm scales around 1). "
             "import: the library's model, saved in its own format (`save_pretrained`, a "
             "timm / open_clip state dict as .safetensors), is read by `config.init_from`'s "
             "loader into ours. export: ours, written by `tools.convert_checkpoint`'s writers "
             "(a transformers directory; a timm .safetensors; big_vision .npz for open_clip), "
             "is read by the library's own loader (`from_pretrained` with no missing or "
             "unexpected keys, timm `load_state_dict(strict=True)`, open_clip "
             "`load_big_vision_weights`). Both then run on the same input. Pass: max "
             "|difference| <= 1e-4 (float32).", "",
             "Model settings that must agree: the Hub's ViT uses the exact GELU and LayerNorm "
             "epsilon 1e-12 (ours: `mlp_activation='gelu_exact'`, `layer_norm_eps=1e-12`; "
             "with our defaults the logits differ by 8e-4 at B/16); timm's ViT and open_clip's "
             "SigLIP towers use the exact GELU; transformers' SigLIP and ViViT use the tanh "
             "GELU and 1e-6, our defaults. SigLIP compares the normalised embeddings and the "
             "logits `t * <img, txt> + b`.", "",
             "| library | model | direction | output | max abs diff | cosine | pass |",
             "|---|---|---|---|---|---|---|"]
    for library, model, direction, output, diff, cosine in rows:
        lines.append(f"| {library} | {model} | {direction} | {output} | {diff:.2e} | "
                     f"{cosine:.8f} | {'yes' if diff <= TOLERANCE else 'NO'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Runs the checks from the command line; returns 0 when every one passes."""
    parser = argparse.ArgumentParser(prog="python -m tools.interop_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=tuple(SIZES), default="full")
    parser.add_argument("--only", nargs="*", choices=tuple(CASES), default=tuple(CASES))
    parser.add_argument("--markdown", default="", help="write the results table here")
    parser.add_argument("--write_references", default="", help="DIR: tiny reference files")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    import projects.siglip  # noqa: F401  (registers the transformers SigLIP mapping)
    import projects.vivit  # noqa: F401  (registers the transformers ViViT mapping)

    start = time.time()
    if args.write_references:
        if args.size != "tiny":
            parser.error("--write_references writes tiny models: add --size tiny.")
        os.makedirs(args.write_references, exist_ok=True)
        for name in args.only:
            for file in write_reference(name, CASES[name](SIZES["tiny"], "tiny"),
                                        args.write_references):
                print(f"wrote {file} ({os.path.getsize(file)} bytes)")
        return 0
    rows, failed = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only:
            library, model, kind = LABELS[name]
            case = CASES[name](SIZES[args.size], args.size)
            for direction in ("import", "export"):
                t0 = time.time()
                check = check_import if direction == "import" else check_export
                result = check(name, case, tmp)
                for output, (diff, cosine) in result.items():
                    rows.append((library, model if args.size == "full" else f"{model} (tiny)",
                                 direction, output, diff, cosine))
                    failed += diff > TOLERANCE
                    print(f"{name:20s} {direction:6s} {output:18s} max|diff| {diff:.2e} "
                          f"cosine {cosine:.8f} ({time.time() - t0:.0f} s)", flush=True)
                shutil.rmtree(tmp, ignore_errors=True)
                os.makedirs(tmp, exist_ok=True)
    command = "python -m tools.interop_check " + " ".join(
        sys.argv[1:] if argv is None else argv)
    text = markdown(rows, command.strip(), time.time() - start)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text)
    print(f"{len(rows) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

