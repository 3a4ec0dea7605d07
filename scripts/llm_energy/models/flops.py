"""FLOPs of a generation, from the model's architecture config (no weights needed).

Counts matrix multiplications (2 x multiply-accumulates), as ``torch.utils.flop_counter`` and the
DeepSpeed profiler do; norms, activations and rotary embeddings are left out. A generation of
``output_len`` tokens is one prefill over the ``input_len`` prompt tokens (which yields the first
token; logits only for the last position, as ``generate`` does) and ``output_len - 1`` decode steps
of one token each with the KV cache, attending to every cached position.

Attention scores are counted in full over the context (``causal_half=False``), as eager attention
computes them; ``causal_half=True`` counts only the causal half of a prefill, the work a fused
kernel does. Grouped-query attention shrinks the K/V projections only. Mixture-of-experts layers
count the router and the ``num_experts_per_tok`` active experts (plus shared experts, if any).
"""

from __future__ import annotations

import json
import operator
from dataclasses import dataclass
from pathlib import Path

from llm_energy import UserError

FIX_CONFIG = "delete the folder to rebuild it, or place a complete copy"
# The keys every architecture FLOPs are counted for has (a text_config's count too).
CONFIG_KEYS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size", "intermediate_size")


def read_config_json(path: str | Path) -> dict:
    """A model's ``config.json`` as a dict; a missing, cut or non-JSON file is one line naming it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path} is missing: {FIX_CONFIG}") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{path} is not valid JSON (not UTF-8 text at byte {exc.start}): {FIX_CONFIG}") from None
    except OSError as exc:
        raise UserError(f"{path} cannot be read ({exc.strerror}): {FIX_CONFIG}") from None
    if not text.strip():
        raise UserError(f"{path} is empty: {FIX_CONFIG}")
    try:
        cfg = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}): "
                        f"{FIX_CONFIG}") from None
    if not isinstance(cfg, dict):
        raise UserError(f"{path} holds a JSON {type(cfg).__name__}, not a model config (an object): {FIX_CONFIG}")
    return cfg


def check_shape(input_len, output_len, batch_size=1) -> None:
    """Refuse lengths and batch sizes that are not whole numbers of at least 1 (one line naming the value)."""
    for name, value in (("input_len", input_len), ("output_len", output_len), ("batch_size", batch_size)):
        try:
            whole = operator.index(value)
        except TypeError:
            raise UserError(f"{name} must be a whole number, got {value!r}") from None
        if whole < 1:
            raise UserError(f"{name} must be at least 1, got {whole}")


@dataclass(frozen=True)
class Arch:
    """The sizes FLOPs depend on."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    intermediate: int  # dense MLP width (or each expert's width in an MoE layer)
    n_experts: int = 0  # 0 = dense
    top_k: int = 0
    shared_intermediate: int = 0
    shared_gate: bool = False
    tied_embeddings: bool = False
    qkv_bias: bool = False  # Qwen2's biased q/k/v projections (parameters only; FLOPs leave biases out)

    @classmethod
    def from_config(cls, cfg: dict) -> Arch:
        """Read a Hugging Face ``config.json`` (Llama, Mistral, Qwen2, OLMo, OLMoE, Mixtral, Qwen2-MoE)."""
        if "text_config" in cfg:
            cfg = {**cfg, **cfg["text_config"]}
        hidden = cfg["hidden_size"]
        heads = cfg["num_attention_heads"]
        n_experts = cfg.get("num_local_experts") or cfg.get("num_experts") or 0
        shared = cfg.get("shared_expert_intermediate_size") or 0
        return cls(
            hidden=hidden, layers=cfg["num_hidden_layers"], heads=heads,
            kv_heads=cfg.get("num_key_value_heads") or heads,
            head_dim=cfg.get("head_dim") or hidden // heads, vocab=cfg["vocab_size"],
            intermediate=(cfg.get("moe_intermediate_size") or cfg["intermediate_size"]) if n_experts
            else cfg["intermediate_size"],
            n_experts=n_experts, top_k=cfg.get("num_experts_per_tok") or 0 if n_experts else 0,
            shared_intermediate=shared, shared_gate=bool(shared),
            tied_embeddings=bool(cfg.get("tie_word_embeddings", False)),
            qkv_bias=bool(cfg.get("attention_bias", cfg.get("model_type") in ("qwen2", "qwen2_moe"))))

    @classmethod
    def from_file(cls, path: str | Path) -> Arch:
        """Read a ``config.json``; a damaged or incomplete one is one line naming the file."""
        cfg = read_config_json(path)
        try:
            return cls.from_config(cfg)
        except KeyError as exc:
            raise UserError(f"{path}: no {exc.args[0]!r} (a model config has {', '.join(CONFIG_KEYS)}): "
                            f"{FIX_CONFIG}") from None
        except (TypeError, ValueError, ZeroDivisionError) as exc:
            raise UserError(f"{path}: not a usable model config ({exc}): {FIX_CONFIG}") from None

    def linear_per_token(self) -> int:
        """Matmul FLOPs of one token through every layer's projections and MLP (no attention scores)."""
        h, d = self.hidden, self.head_dim
        attn = 2 * h * (self.heads * d) + 2 * 2 * h * (self.kv_heads * d) + 2 * (self.heads * d) * h
        if self.n_experts:
            mlp = 2 * h * self.n_experts + self.top_k * 6 * h * self.intermediate
            if self.shared_intermediate:
                mlp += 6 * h * self.shared_intermediate + (2 * h if self.shared_gate else 0)
        else:
            mlp = 6 * h * self.intermediate
        return self.layers * (attn + mlp)

    def _attention_parameters(self) -> int:
        h, d = self.hidden, self.head_dim
        bias = (self.heads + 2 * self.kv_heads) * d if self.qkv_bias else 0
        return 2 * h * self.heads * d + 2 * h * self.kv_heads * d + bias

    def _mlp_parameters(self, active: bool) -> int:
        h = self.hidden
        if not self.n_experts:
            return 3 * h * self.intermediate
        experts = self.top_k if active else self.n_experts
        shared = 3 * h * self.shared_intermediate + (h if self.shared_gate else 0)
        return h * self.n_experts + experts * 3 * h * self.intermediate + shared

    def parameters(self, active: bool = False) -> int:
        """Weights of the matrices (embeddings, projections, MLP or experts, head; norms left out).

        ``active``: only the experts one token uses (an MoE's "active parameters").
        """
        embed = self.vocab * self.hidden * (1 if self.tied_embeddings else 2)
        return embed + self.layers * (self._attention_parameters() + self._mlp_parameters(active))

    def active_parameters(self) -> int:
        return self.parameters(active=True)

    def attention_scores(self, queries: int, keys: int) -> int:
        """QK^T and attention x V for ``queries`` positions over ``keys`` positions, every layer."""
        return self.layers * 2 * 2 * self.heads * self.head_dim * queries * keys

    def lm_head(self, positions: int = 1) -> int:
        return 2 * self.hidden * self.vocab * positions


def prefill_flops(arch: Arch, input_len: int, causal_half: bool = False) -> int:
    """One sequence's prefill: projections for every prompt token, scores, logits for the last position."""
    check_shape(input_len, 1)
    if causal_half:
        scores = arch.attention_scores(1, input_len * (input_len + 1) // 2)
    else:
        scores = arch.attention_scores(input_len, input_len)
    return input_len * arch.linear_per_token() + scores + arch.lm_head(1)


def decode_flops(arch: Arch, input_len: int, output_len: int) -> int:
    """One sequence's ``output_len - 1`` decode steps; step k attends to ``input_len + k`` positions."""
    check_shape(input_len, output_len)
    steps = max(output_len - 1, 0)
    keys = sum(input_len + k for k in range(1, steps + 1))
    return steps * (arch.linear_per_token() + arch.lm_head(1)) + arch.attention_scores(1, keys)


def generation_flops(arch: Arch, input_len: int, output_len: int, batch_size: int = 1,
                     causal_half: bool = False) -> int:
    """FLOPs of generating ``output_len`` tokens for each of ``batch_size`` prompts of ``input_len`` tokens."""
    check_shape(input_len, output_len, batch_size)
    per_seq = prefill_flops(arch, input_len, causal_half) + decode_flops(arch, input_len, output_len)
    return batch_size * per_seq
