"""Permutation specs of transformer families, looked up by class (``family_spec``).

torch.fx cannot follow a library transformer's attention (timm reshapes the fused
qkv into heads and calls ``scaled_dot_product_attention``; Hugging Face models need
their own tracer), so for these classes the groups are written once per family, from
the library's module structure -- never per run:

- ``stream``: the residual stream, one permutation through the whole net: the token
  and position embeddings (and class token), every LayerNorm's weight and bias (a
  LayerNorm commutes with permuting its features), every read from the stream (qkv,
  MLP in) and every write into it (attention out, MLP out), the final norm and the
  head (tied embeddings stay tied: the tied matrix is one tensor);
- ``<block>.mlp``: each MLP's hidden units;
- ``<block>.attn.heads``: the heads as blocks of ``head_dim`` entries -- a head's q, k
  and v rows move together and the output projection's columns follow;
- ``<block>.attn.h<i>.qk`` / ``.v``: inside head slot i, one permutation of the q and k
  dims together (q.k is unchanged) and one of the v dims (the output projection's
  columns follow). The attention logits and outputs are unchanged by construction.

Activation matching reads these groups' features with forward hooks (``probes_on =
"modules"``): the stream at every block's output, the MLP's activation, and per head
its q/k and v features (slices of the fused qkv output).

A configuration outside what a family's spec covers (q/k norms, gated attention, ...)
is refused with the reason.
"""
from __future__ import annotations

from collections.abc import Callable

from torch import nn

from modeconn.align.groups import Axis, PermutationGroup, PermutationSpec, Probe, UnsupportedGraph


def _attention(groups: list, block: str, heads: int, head_dim: int, qkv: list[tuple[str, int]],
               out: list[tuple[str, int]], probe: str) -> None:
    """Head and within-head groups of one attention layer. ``qkv``: (key, dim) of the fused
    projection's output axis (q, k, v stacked); ``out``: (key, dim) of the output projection's input."""
    width = heads * head_dim
    slots = [[f"{block}.h{h}.qk", f"{block}.h{h}.v"] for h in range(heads)]
    groups.append(PermutationGroup(
        f"{block}.heads", heads,
        [Axis(k, d, part * width, head_dim) for k, d in qkv for part in range(3)]
        + [Axis(k, d, 0, head_dim) for k, d in out], heads=slots))
    for h in range(heads):
        base = h * head_dim
        groups.append(PermutationGroup(
            slots[h][0], head_dim, [Axis(k, d, part * width + base) for k, d in qkv for part in range(2)],
            probes=[Probe(probe, -1, base), Probe(probe, -1, width + base)]))
        groups.append(PermutationGroup(
            slots[h][1], head_dim, [Axis(k, d, 2 * width + base) for k, d in qkv] + [Axis(k, d, base) for k, d in out],
            probes=[Probe(probe, -1, 2 * width + base)]))


def _refuse(model_name: str, where: str, what: str) -> None:
    raise UnsupportedGraph(f"{model_name}: {where} has {what}, which the transformer permutation spec does not "
                           "cover; build it without (or give the model a permutation_spec method)")


def _identity(module) -> bool:
    return module is None or isinstance(module, nn.Identity)


def timm_vit(model: nn.Module, prefix: str = "") -> PermutationSpec:
    """timm's VisionTransformer (pre-LN blocks, fused qkv, optional LayerScale, class/register tokens)."""
    p = prefix
    width = model.embed_dim
    stream = [Axis(f"{p}patch_embed.proj.weight", 0)]
    if model.patch_embed.proj.bias is not None:
        stream.append(Axis(f"{p}patch_embed.proj.bias", 0))
    if not _identity(getattr(model.patch_embed, "norm", None)):
        _refuse("VisionTransformer", "patch_embed", "a norm")
    for name in ("cls_token", "reg_token", "pos_embed"):
        if getattr(model, name, None) is not None:
            stream.append(Axis(f"{p}{name}", 2))
    for name in ("norm_pre", "norm", "fc_norm"):
        stream += _layernorm(model, name, p)
    probes, groups = [], []
    for i, blk in enumerate(model.blocks):
        b = f"{p}blocks.{i}"
        attn, mlp = blk.attn, blk.mlp
        for part in ("q_norm", "k_norm", "norm"):
            if not _identity(getattr(attn, part, None)):
                _refuse("VisionTransformer", f"{b}.attn", f"a {part}")
        if getattr(attn, "gate", None) is not None or not _identity(getattr(mlp, "norm", None)):
            _refuse("VisionTransformer", b, "a gate or an MLP norm")
        if not hasattr(mlp, "fc1") or not isinstance(mlp.fc1, nn.Linear):
            _refuse("VisionTransformer", f"{b}.mlp", f"a {type(mlp).__name__}")
        stream += _layernorm(blk, "norm1", f"{b}.") + _layernorm(blk, "norm2", f"{b}.")
        for ls in ("ls1", "ls2"):
            if hasattr(getattr(blk, ls), "gamma"):
                stream.append(Axis(f"{b}.{ls}.gamma", 0))
        stream += [Axis(f"{b}.attn.qkv.weight", 1), Axis(f"{b}.attn.proj.weight", 0),
                   Axis(f"{b}.mlp.fc1.weight", 1), Axis(f"{b}.mlp.fc2.weight", 0)]
        stream += [Axis(f"{b}.attn.proj.bias", 0)] if attn.proj.bias is not None else []
        stream += [Axis(f"{b}.mlp.fc2.bias", 0)] if mlp.fc2.bias is not None else []
        qkv = [(f"{b}.attn.qkv.weight", 0)] + ([(f"{b}.attn.qkv.bias", 0)] if attn.qkv.bias is not None else [])
        _attention(groups, f"{b}.attn", attn.num_heads, attn.head_dim, qkv, [(f"{b}.attn.proj.weight", 1)],
                   f"{b}.attn.qkv")
        hidden = [Axis(f"{b}.mlp.fc1.weight", 0), Axis(f"{b}.mlp.fc2.weight", 1)]
        hidden += [Axis(f"{b}.mlp.fc1.bias", 0)] if mlp.fc1.bias is not None else []
        groups.append(PermutationGroup(f"{b}.mlp", mlp.fc1.out_features, hidden, [Probe(f"{b}.mlp.act", -1)]))
        probes.append(Probe(b, -1))
    if isinstance(model.head, nn.Linear):
        stream.append(Axis(f"{p}head.weight", 1))
    elif not _identity(model.head):
        _refuse("VisionTransformer", "head", f"a {type(model.head).__name__}")
    if width != model.blocks[0].attn.qkv.in_features:
        _refuse("VisionTransformer", "blocks", "a width other than embed_dim")
    return PermutationSpec([PermutationGroup("stream", width, stream, probes)] + groups, probes_on="modules")


def _layernorm(parent: nn.Module, name: str, prefix: str) -> list[Axis]:
    m = getattr(parent, name, None)
    if _identity(m):
        return []
    if not isinstance(m, nn.LayerNorm):
        _refuse(type(parent).__name__, f"{prefix}{name}", f"a {type(m).__name__}")
    return [Axis(f"{prefix}{name}.{k}", 0) for k in ("weight", "bias") if getattr(m, k, None) is not None]


def hf_gpt2(model: nn.Module, prefix: str = "") -> PermutationSpec:
    """Hugging Face's GPT2LMHeadModel (Conv1D layers store weights as (in, out))."""
    t = f"{prefix}transformer."
    cfg = model.config
    width, heads = cfg.n_embd, cfg.n_head
    if getattr(cfg, "scale_attn_by_inverse_layer_idx", False) or getattr(cfg, "reorder_and_upcast_attn", False):
        pass  # both keep q.k and the softmax's input per head: permutation-safe
    if getattr(cfg, "add_cross_attention", False):
        _refuse("GPT2LMHeadModel", "config", "cross-attention")
    stream = [Axis(f"{t}wte.weight", 1), Axis(f"{t}wpe.weight", 1)] + _layernorm(model.transformer, "ln_f", t)
    if model.lm_head.weight is not model.transformer.wte.weight:
        stream.append(Axis(f"{prefix}lm_head.weight", 1))
    probes, groups = [], []
    for i, blk in enumerate(model.transformer.h):
        b = f"{t}h.{i}"
        stream += _layernorm(blk, "ln_1", f"{b}.") + _layernorm(blk, "ln_2", f"{b}.")
        stream += [Axis(f"{b}.attn.c_attn.weight", 0), Axis(f"{b}.attn.c_proj.weight", 1),
                   Axis(f"{b}.attn.c_proj.bias", 0), Axis(f"{b}.mlp.c_fc.weight", 0),
                   Axis(f"{b}.mlp.c_proj.weight", 1), Axis(f"{b}.mlp.c_proj.bias", 0)]
        _attention(groups, f"{b}.attn", heads, width // heads,
                   [(f"{b}.attn.c_attn.weight", 1), (f"{b}.attn.c_attn.bias", 0)], [(f"{b}.attn.c_proj.weight", 0)],
                   f"{b}.attn.c_attn")
        hidden = blk.mlp.c_fc.weight.shape[1]
        groups.append(PermutationGroup(f"{b}.mlp", hidden, [
            Axis(f"{b}.mlp.c_fc.weight", 1), Axis(f"{b}.mlp.c_fc.bias", 0), Axis(f"{b}.mlp.c_proj.weight", 0)],
            [Probe(f"{b}.mlp.act", -1)]))
        probes.append(Probe(b, -1))
    return PermutationSpec([PermutationGroup("stream", width, stream, probes)] + groups, probes_on="modules")


def _families() -> list[tuple[type, Callable[[nn.Module, str], PermutationSpec]]]:
    found = []
    try:
        from timm.models.vision_transformer import VisionTransformer
        found.append((VisionTransformer, timm_vit))
    except ImportError:  # pragma: no cover - timm is a dependency
        pass
    try:
        from transformers import GPT2LMHeadModel
        found.append((GPT2LMHeadModel, hf_gpt2))
    except ImportError:  # pragma: no cover - transformers is a dependency
        pass
    return found


def family_spec(model: nn.Module) -> PermutationSpec | None:
    """The spec of the first module of ``model`` (itself or a submodule, e.g. inside a thin
    wrapper) whose class has a family spec; None when there is none. A wrapper may only
    pass the family's output through (its other parameters would be left out)."""
    families = _families()
    for name, module in model.named_modules():
        for cls, build in families:
            if isinstance(module, cls):
                spec = build(module, f"{name}." if name else "")
                covered = {n for n, _ in module.named_parameters(prefix=name)}
                extra = [n for n, _ in model.named_parameters() if n not in covered]
                if extra:
                    raise UnsupportedGraph(f"{type(model).__name__} wraps a {cls.__name__} but has parameters of "
                                           f"its own ({extra[:3]}) that no permutation spec covers")
                return spec
    return None
