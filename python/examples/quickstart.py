"""From a raw recording to HRV, and from a corpus to a subject-independent score, in a few lines.

    python python/examples/quickstart.py [CORPUS_DIR]

Without CORPUS_DIR only the recording part runs (CI passes a corpus written by `prepare`;
with one, HRV features and the bundled pre-trained model's embeddings are cross-validated on it).
"""
import pathlib
import sys

import numpy as np

import cardiaffect as ca

root = pathlib.Path(__file__).resolve().parents[2]

# 1. Any supported file or dataset folder; here a bundled 5-minute ECG (WFDB).
recs = ca.read(root / "data" / "biosignalsnotebooks" / "ecg_5min.hea")
r = recs[0]
print(f"{r.source}: lead {r.lead}, {len(r.signal) / r.fs:.0f} s at {r.fs:g} Hz")

# 2. NeuroKit2's names, Rust speed.
clean = ca.ecg_clean(r.signal, sampling_rate=r.fs)
peaks = ca.ecg_peaks(clean, sampling_rate=r.fs)
hrv = ca.hrv_time(peaks, sampling_rate=r.fs)
print(f"{len(peaks)} beats; mean HR {hrv['mean_hr_bpm']:.1f} bpm, RMSSD {hrv['rmssd_ms']:.1f} ms")

# 3. A corpus and the folds `cardiaffect finetune` uses: no person in both train and test.
if len(sys.argv) > 1:
    import csv

    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    corpus = pathlib.Path(sys.argv[1])
    windows = np.load(corpus / "windows.npy", mmap_mode="r")
    rows = list(csv.DictReader(open(corpus / "windows.csv")))
    fs = 128.0
    X = []
    for w in windows:
        h = ca.hrv_time(ca.ecg_peaks(np.asarray(w, dtype=np.float64), sampling_rate=fs), sampling_rate=fs) or {}
        X.append([h.get("mean_hr_bpm", 0.0), h.get("rmssd_ms", 0.0)])
    X = np.nan_to_num(np.array(X))
    y = np.array([float(r["arousal"]) > 5 for r in rows], dtype=int)
    k = min(5, len({r["subject"] for r in rows}))
    cv = ca.folds(corpus, task="arousal", n_folds=k, seed=1)
    scores = cross_val_score(LogisticRegression(max_iter=1000), X, y, cv=cv, scoring="balanced_accuracy")
    print(f"HRV + logistic regression, subject-independent {k} folds: balanced accuracy {scores.mean():.3f} ± {scores.std():.3f}")

    # 4. The pre-trained Transformer's CLS embeddings as features, on the same folds.
    c = ca.Corpus(corpus)
    m = ca.Model.load("bundled")
    if m.window_len == c.window_len:
        E = m.embed(np.asarray(c.windows))
        scores = cross_val_score(LogisticRegression(max_iter=1000), E, y, cv=cv, scoring="balanced_accuracy")
        print(f"bundled pre-trained embeddings + logistic regression, same folds: balanced accuracy {scores.mean():.3f} ± {scores.std():.3f}")
