"""The cardiaffect model in PyTorch: the same computation as crates/cardiaffect-model, with the
same parameter names, so that one safetensors file (PyTorch layout) loads in both.

Used by golden_model.py (parity files) and bench.py (speed against PyTorch); never by CI.
"""
import json
import math

import torch
from torch import nn
import torch.nn.functional as F


class SignalEncoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        c_in = 1
        for c, k, s in zip(cfg["conv_channels"], cfg["conv_kernels"], cfg["conv_strides"]):
            self.convs.append(nn.Conv1d(c_in, c, k, stride=s, padding=k // 2))
            self.norms.append(nn.LayerNorm(c, eps=cfg["layer_norm_eps"]))
            c_in = c

    def forward(self, x):  # [B, 1, L] -> [B, T, C]
        h = x
        for conv, norm in zip(self.convs, self.norms):
            h = F.gelu(norm(conv(h).transpose(1, 2))).transpose(1, 2)
        return h.transpose(1, 2)


class Mha(nn.Module):
    def __init__(self, d, heads, dropout):
        super().__init__()
        self.query, self.key, self.value, self.output = (nn.Linear(d, d) for _ in range(4))
        self.heads = heads
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        b, t, d = x.shape
        dk = d // self.heads
        split = lambda y: y.view(b, t, self.heads, dk).transpose(1, 2)  # noqa: E731
        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        w = self.dropout(torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(dk), dim=-1))
        return self.output((w @ v).transpose(1, 2).reshape(b, t, d))


class Pwff(nn.Module):
    def __init__(self, d, ff, dropout):
        super().__init__()
        self.linear_inner = nn.Linear(d, ff)
        self.linear_outer = nn.Linear(ff, d)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.linear_outer(self.dropout(F.gelu(self.linear_inner(x))))


class Layer(nn.Module):
    """Pre-LN layer with Burn's naming: norm_2 before attention, norm_1 before feed-forward."""

    def __init__(self, cfg):
        super().__init__()
        d, eps = cfg["d_model"], cfg["layer_norm_eps"]
        self.mha = Mha(d, cfg["n_heads"], cfg["dropout"])
        self.norm_1 = nn.LayerNorm(d, eps=eps)
        self.norm_2 = nn.LayerNorm(d, eps=eps)
        self.pwff = Pwff(d, cfg["d_ff"], cfg["dropout"])
        self.dropout = nn.Dropout(cfg["dropout"])

    def forward(self, x):
        x = x + self.dropout(self.mha(self.norm_2(x)))
        return x + self.dropout(self.pwff(self.norm_1(x)))


class Transformer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.layers = nn.ModuleList(Layer(cfg) for _ in range(cfg["n_layers"]))

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


def n_tokens(cfg):
    n = cfg["window_len"]
    for k, s in zip(cfg["conv_kernels"], cfg["conv_strides"]):
        n = (n + 2 * (k // 2) - k) // s + 1
    return n


def sinusoid(n, d):
    p = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(d // 2, dtype=torch.float64)[None, :]
    a = p / torch.pow(10000.0, 2 * i / d)
    out = torch.zeros(n, d, dtype=torch.float64)
    out[:, 0::2], out[:, 1::2] = torch.sin(a), torch.cos(a)
    return out.float()


class Model(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        d, t = cfg["d_model"], n_tokens(cfg)
        self.spt = math.prod(cfg["conv_strides"])
        self.encoder = SignalEncoder(cfg)
        self.proj = nn.Linear(cfg["conv_channels"][-1], d)
        self.cls_token = nn.Parameter(torch.randn(d) * 0.02)
        self.mask_token = nn.Parameter(torch.randn(d) * 0.02)
        if cfg["positional"] == "learned":
            self.pos = nn.Parameter(torch.randn(t + 1, d) * 0.02)
        else:
            self.register_buffer("sin_pos", sinusoid(t + 1, d), persistent=False)
            self.pos = None
        k = cfg.get("conv_pos_kernel")
        # Depthwise convolution over tokens, added to them (wav2vec 2.0's relative positions).
        self.pos_conv = nn.Conv1d(d, d, k, padding=k // 2, groups=d) if k else None
        self.transformer = Transformer(cfg)
        self.final_norm = nn.LayerNorm(d, eps=cfg["layer_norm_eps"])
        self.recon_head = nn.Linear(d, self.spt)
        self.cls_head = nn.Linear(d, cfg["n_classes"])
        self.dropout = nn.Dropout(cfg["dropout"])

    def encode(self, x, mask=None):
        b, _ = x.shape
        h = self.proj(self.encoder(x[:, None, :]))
        if mask is not None:
            h = torch.where(mask[:, :, None], self.mask_token.expand_as(h), h)
        if self.pos_conv is not None:
            h = h + F.gelu(self.pos_conv(h.transpose(1, 2))).transpose(1, 2)
        h = torch.cat([self.cls_token.expand(b, 1, -1), h], 1)
        h = self.dropout(h + (self.pos if self.pos is not None else self.sin_pos))
        h = self.final_norm(self.transformer(h))
        return h[:, 0], h[:, 1:]

    def reconstruct(self, tokens):
        b, t, _ = tokens.shape
        return self.recon_head(tokens).reshape(b, t * self.spt)

    def classify(self, cls):
        return self.cls_head(cls)


def load_config(path):
    with open(path) as f:
        return json.load(f)


def masked_mse(recon, x, mask, spt):
    m = mask.repeat_interleave(spt, dim=1).float()
    return ((recon - x) ** 2 * m).sum() / m.sum().clamp(min=1)
