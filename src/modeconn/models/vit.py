"""A small vision transformer as timm builds it (``timm.models.vision_transformer.VisionTransformer``).

timm rather than torchvision: timm's ViT is the one most research code fine-tunes and
merges, it takes any image size, patch size, channel count and head count as
constructor arguments (torchvision's ``VisionTransformer`` is square-image and
3-channel only by its weights' conventions), and its blocks are the standard
pre-LayerNorm ones with a fused ``qkv`` Linear. The model is timm's class itself,
unwrapped: parameter names are timm's (``blocks.0.attn.qkv.weight``), so its
checkpoints load as they are. Dropouts, drop-path and LayerScale are off (a small
CPU recipe; the permutation spec covers exactly what is built). The permutation
groups come from :mod:`modeconn.align.families` (looked up by class).
"""
from __future__ import annotations

from torch import nn


def vit(input_shape: tuple[int, ...], num_classes: int, width: int = 64, depth: int = 4, heads: int = 4,
        patch: int = 7, mlp_ratio: float = 2.0) -> nn.Module:
    """timm's VisionTransformer for (C, H, W) inputs: (H/patch)*(W/patch) tokens + a class token."""
    from timm.models.vision_transformer import VisionTransformer

    if len(input_shape) != 3:
        raise ValueError(f"vit needs (C, H, W) images, got input shape {tuple(input_shape)}")
    channels, height, wide = (int(s) for s in input_shape)
    if height % patch or wide % patch:
        raise ValueError(f"vit: patch {patch} does not divide the {height}x{wide} image")
    if width % heads:
        raise ValueError(f"vit: width {width} is not a multiple of heads {heads}")
    return VisionTransformer(img_size=(height, wide), patch_size=patch, in_chans=channels, num_classes=num_classes,
                             embed_dim=width, depth=depth, num_heads=heads, mlp_ratio=mlp_ratio, qkv_bias=True,
                             class_token=True, global_pool="token", drop_rate=0.0, attn_drop_rate=0.0,
                             drop_path_rate=0.0)
