#!/usr/bin/env python3
"""The PyTorch side of `cardiaffect bench`: the same model (reference/model.py, default config),
the same batch and steps, timed the same way. Prints one JSON object.

    python reference/bench.py [--config config.json] [--batch 32] [--steps 5] [--warmup 2]
                              [--threads 2] [--skip-train] [--cls-row]

`cardiaffect bench` passes the config of the model it times, so both sides run the same model.

Attention uses torch's fused scaled_dot_product_attention (what nn.TransformerEncoder uses), so
PyTorch is measured at its fastest for this model. Dropout 0.1 in training steps, as in ours.
Inference runs the whole forward pass; `--cls-row` computes what classification needs, as
cardiaffect's `predict` does: the last layer for the CLS row alone (every row's keys and values,
one query).
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

import model as ref

DEFAULT = {
    "window_len": 1280, "conv_channels": [64, 128, 128], "conv_kernels": [7, 5, 3], "conv_strides": [2, 2, 1],
    "d_model": 128, "n_heads": 4, "n_layers": 4, "d_ff": 512, "dropout": 0.1, "positional": "learned",
    "n_classes": 2, "layer_norm_eps": 1e-5, "conv_pos_kernel": 9,
}


def split_heads(y, heads):
    """[B, N, d] -> [B, heads, N, d / heads]."""
    b, n, d = y.shape
    return y.view(b, n, heads, d // heads).transpose(1, 2)


def fused_mha(self, x):
    b, t, d = x.shape
    split = lambda y: split_heads(y, self.heads)  # noqa: E731
    o = F.scaled_dot_product_attention(split(self.query(x)), split(self.key(x)), split(self.value(x)),
                                       dropout_p=self.dropout.p if self.training else 0.0)
    return self.output(o.transpose(1, 2).reshape(b, t, d))


ref.Mha.forward = fused_mha


def cls_row_forward(self, x):
    """A layer's output for the CLS row alone, [B, 1, d]: what classification reads of the last
    layer (every row's keys and values, the CLS row's query, attention, projection, feed-forward)."""
    h = self.norm_2(x)
    b, _, d = h.shape
    mha = self.mha
    split = lambda y: split_heads(y, mha.heads)  # noqa: E731
    o = F.scaled_dot_product_attention(split(mha.query(h[:, :1])), split(mha.key(h)), split(mha.value(h)))
    x = x[:, :1] + mha.output(o.transpose(1, 2).reshape(b, 1, d))
    return x + self.pwff(self.norm_1(x))


def token_mask(b, t):
    # The same fixed pattern as cardiaffect's bench: about 14 % of tokens, in spans of 5.
    m = torch.zeros(b, t, dtype=torch.bool)
    for i in range(t):
        if (i // 5) % 7 == 0:
            m[:, i] = True
    return m


def median_time(fn, steps, warmup):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--config", help="model config JSON (cardiaffect's ModelConfig); default: DEFAULT")
    ap.add_argument("--skip-train", action="store_true", help="time inference only")
    ap.add_argument("--cls-row", action="store_true", help="inference computes the last layer for the CLS row alone")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cfg = DEFAULT
    if a.config:
        with open(a.config) as f:
            cfg = json.load(f)
    m = ref.Model(cfg)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-4)
    b, length = a.batch, cfg["window_len"]
    x = torch.randn(b, length)
    y = torch.randint(0, 2, (b,))
    mask = token_mask(b, ref.n_tokens(cfg))

    def pretrain():
        m.train()
        opt.zero_grad(set_to_none=True)
        _, tokens = m.encode(x, mask)
        loss = ref.masked_mse(m.reconstruct(tokens), x, mask, m.spt)
        loss.backward()
        opt.step()

    def finetune():
        m.train()
        opt.zero_grad(set_to_none=True)
        cls, _ = m.encode(x)
        F.cross_entropy(m.classify(cls), y).backward()
        opt.step()

    def infer(batch):
        def f():
            m.eval()
            with torch.inference_mode():
                cls, _ = m.encode(batch)
                torch.softmax(m.classify(cls), -1)
        return f

    pre = None if a.skip_train else median_time(pretrain, a.steps, a.warmup)
    fin = None if a.skip_train else median_time(finetune, a.steps, a.warmup)
    if a.cls_row:
        last = m.transformer.layers[-1]
        last.forward = cls_row_forward.__get__(last)
    inf = median_time(infer(x), a.steps, a.warmup)
    lat = median_time(infer(x[:1]), max(a.steps * 4, 20), a.warmup)
    print(json.dumps({
        "torch": torch.__version__, "threads": a.threads, "batch": b, "params": sum(p.numel() for p in m.parameters()),
        "pretrain_step_ms": pre and pre * 1e3, "finetune_step_ms": fin and fin * 1e3,
        "infer_b32_windows_per_s": b / inf, "infer_b1_ms": lat * 1e3, "infer_cls_row": a.cls_row,
    }))


if __name__ == "__main__":
    main()
