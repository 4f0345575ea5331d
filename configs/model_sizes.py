"""ViT size presets, and `vit_config("B/16")` to turn a variant name into model kwargs.

Sources: Ti/S/B/L/H from the ViT and DeiT papers; M, g and G from "Scaling Vision
Transformers" (Zhai et al. 2022, Table 2); e from PaLI (Chen et al. 2022); So400m, the
shape-optimized ViT, from "Getting ViT in Shape" (Alabdulmohsin et al. 2023) as used by
SigLIP.
"""

from __future__ import annotations

# name: (hidden_size, depth, mlp_dim, num_heads)
VIT_SIZES: dict[str, tuple[int, int, int, int]] = {
    "Ti": (192, 12, 768, 3),
    "S": (384, 12, 1536, 6),
    "M": (512, 12, 2048, 8),
    "B": (768, 12, 3072, 12),
    "L": (1024, 24, 4096, 16),
    "H": (1280, 32, 5120, 16),
    "g": (1408, 40, 6144, 16),
    "G": (1664, 48, 8192, 16),
    "e": (1792, 56, 15360, 16),
    "So400m": (1152, 27, 4304, 16),
}


def vit_config(variant: str) -> dict:
    """Parses "SIZE/PATCH" (e.g. "B/16", "So400m/14") or a bare "SIZE" into ViT kwargs.

    Returns {"hidden_size", "depth", "mlp_dim", "num_heads"} plus "patch_size" (p, p)
    when a patch is given. Sizes are case-sensitive ("g" and "G" differ). Raises
    ValueError naming the known sizes for an unknown size or a malformed patch.
    """
    size, sep, patch = variant.partition("/")
    if size not in VIT_SIZES:
        raise ValueError(
            f"Unknown ViT size {size!r} in variant {variant!r}; known sizes: "
            f"{', '.join(VIT_SIZES)} (written SIZE/PATCH, e.g. 'B/16')."
        )
    hidden_size, depth, mlp_dim, num_heads = VIT_SIZES[size]
    config = dict(hidden_size=hidden_size, depth=depth, mlp_dim=mlp_dim, num_heads=num_heads)
    if sep:
        if not patch.isdigit() or int(patch) <= 0:
            raise ValueError(
                f"Bad patch size {patch!r} in variant {variant!r}; expected SIZE/PATCH with "
                f"a positive integer patch, e.g. 'B/16'. Known sizes: {', '.join(VIT_SIZES)}."
            )
        config["patch_size"] = (int(patch), int(patch))
    return config
