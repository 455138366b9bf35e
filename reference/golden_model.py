#!/usr/bin/env python3
"""Golden files for the model's parity tests, written by the PyTorch reference (model.py).

    ~/.cache/cardiaffect/torch-venv/bin/python reference/golden_model.py   # -> fixtures/golden/model/

config.json (a small model: parity does not depend on size), weights.safetensors (PyTorch
layout), input.npy [B, L] (real ECG windows from data/mitdb208), mask.npy [B, T], labels.npy,
recon.npy, logits.npy, cls.npy, loss.json (masked reconstruction MSE, cross-entropy, their sum),
and grad_<name>.npy for a few parameters (PyTorch layout) after backward of the sum.
"""
import json
import pathlib

import numpy as np
import torch
import wfdb
from safetensors.torch import save_file

from model import Model, masked_mse, n_tokens

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "fixtures" / "golden" / "model"

CFG = {
    "window_len": 320,
    "conv_channels": [16, 32, 32],
    "conv_kernels": [7, 5, 3],
    "conv_strides": [2, 2, 1],
    "d_model": 32,
    "n_heads": 4,
    "n_layers": 2,
    "d_ff": 64,
    "dropout": 0.0,
    "positional": "learned",
    "conv_pos_kernel": 5,
    "n_classes": 2,
    "layer_norm_eps": 1e-5,
}
GRADS = ["encoder.convs.0.weight", "transformer.layers.0.mha.query.weight", "transformer.layers.1.pwff.linear_outer.weight", "cls_token", "mask_token", "pos", "pos_conv.weight", "cls_head.weight", "recon_head.bias"]


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(20221121)
    model = Model(CFG)
    # Non-trivial LayerNorm parameters, so that their layout is tested too.
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "norm" in n:
                p.add_(torch.randn_like(p) * 0.1)
    rec = wfdb.rdrecord(str(ROOT / "data" / "mitdb208" / "208"))
    sig = rec.p_signal[:, 0].astype(np.float32)
    b, length = 3, CFG["window_len"]
    x = np.stack([sig[i * 1000: i * 1000 + length] for i in range(b)])
    x = (x - x.mean(1, keepdims=True)) / x.std(1, keepdims=True)
    t = n_tokens(CFG)
    mask = np.zeros((b, t), dtype=bool)
    mask[0, 3:9] = True
    mask[1, 20:30] = True
    mask[2, 50:56] = True
    labels = np.array([0, 1, 1], dtype=np.int64)
    xt, mt = torch.from_numpy(x), torch.from_numpy(mask)
    cls, tokens = model.encode(xt, mt)
    recon = model.reconstruct(tokens)
    logits = model.classify(cls)
    mse = masked_mse(recon, xt, mt, model.spt)
    ce = torch.nn.functional.cross_entropy(logits, torch.from_numpy(labels))
    total = mse + ce
    total.backward()
    params = dict(model.named_parameters())
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, OUT / "weights.safetensors")
    with open(OUT / "config.json", "w") as f:
        json.dump(CFG, f, indent=2)
    np.save(OUT / "input.npy", x)
    np.save(OUT / "mask.npy", mask.astype(np.uint8))
    np.save(OUT / "labels.npy", labels.astype(np.int32))
    np.save(OUT / "recon.npy", recon.detach().numpy())
    np.save(OUT / "logits.npy", logits.detach().numpy())
    np.save(OUT / "cls.npy", cls.detach().numpy())
    for g in GRADS:
        np.save(OUT / f"grad_{g}.npy", params[g].grad.numpy())
    with open(OUT / "loss.json", "w") as f:
        json.dump({"masked_mse": mse.item(), "cross_entropy": ce.item(), "total": total.item(), "grads": GRADS,
                   "torch": torch.__version__, "params": sum(p.numel() for p in model.parameters())}, f, indent=2)
    print("wrote", OUT, "loss", total.item())


if __name__ == "__main__":
    main()
