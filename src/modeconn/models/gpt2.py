"""A small GPT-2 as Hugging Face ``transformers`` builds it (``GPT2LMHeadModel``).

The library's model is kept whole (its ``Conv1D`` layers, fused ``c_attn``, the LM head
tied to the token embedding as the library ties it) inside a thin wrapper that makes it
a classifier like every other arch here:

- inputs are token ids (N, T); datasets keep every ``x`` as float32, so the ids arrive as
  floats (exact below 2**24) and are cast back;
- the logits come out as (N, V, T): the class dim is dim 1, as for images, so
  ``F.cross_entropy(logits, y)`` with y (N, T) is the per-token NLL and
  ``logits.argmax(1) != y`` the per-token error, with no change to training or evaluation.

The tied head's matrix is one parameter; ``state_dict`` holds it once (under the
embedding's name ``model.transformer.wte.weight``, as ``named_parameters`` does) and
``load_state_dict`` ties it back, so ``torch.func.functional_call`` (which refuses two
values for tied weights) works on whole state dicts. Dropouts are off.
"""
from __future__ import annotations

import torch
from torch import nn

HEAD, EMBEDDING = "model.lm_head.weight", "model.transformer.wte.weight"


class GPT2(nn.Module):
    """``GPT2LMHeadModel`` with (N, T) float ids in and (N, V, T) logits out."""

    def __init__(self, vocab: int, context: int, width: int, depth: int, heads: int, mlp_ratio: float):
        super().__init__()
        from transformers import GPT2Config, GPT2LMHeadModel
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()   # bos/eos ids outside a character vocabulary: unused here
        config = GPT2Config(vocab_size=vocab, n_positions=context, n_embd=width, n_layer=depth, n_head=heads,
                            n_inner=int(mlp_ratio * width), resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                            use_cache=False, tie_word_embeddings=True, bos_token_id=None, eos_token_id=None)
        config._attn_implementation = "eager"   # identical numbers; traceable by hooks and on every backend
        self.model = GPT2LMHeadModel(config)
        self._register_state_dict_hook(_drop_tied_head)
        self.register_load_state_dict_pre_hook(_tie_head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(input_ids=x.long(), use_cache=False, return_dict=True).logits
        return logits.transpose(1, 2)


def _drop_tied_head(module, state_dict, prefix, local_metadata) -> None:
    state_dict.pop(prefix + HEAD, None)


def _tie_head(module, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs) -> None:
    if prefix + EMBEDDING in state_dict and prefix + HEAD not in state_dict:
        state_dict[prefix + HEAD] = state_dict[prefix + EMBEDDING]


def gpt2(input_shape: tuple[int, ...], num_classes: int, width: int = 128, depth: int = 4, heads: int = 4,
         mlp_ratio: float = 4.0) -> nn.Module:
    """For (T,) token-id inputs over a vocabulary of ``num_classes`` symbols; context = T."""
    if len(input_shape) != 1:
        raise ValueError(f"gpt2 needs (T,) token-id inputs (dataset=text), got input shape {tuple(input_shape)}")
    if width % heads:
        raise ValueError(f"gpt2: width {width} is not a multiple of heads {heads}")
    return GPT2(int(num_classes), int(input_shape[0]), width, depth, heads, mlp_ratio)
