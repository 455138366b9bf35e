#!/usr/bin/env python3
"""Golden files for cardiaffect-signal, computed by scipy and NeuroKit2 on the bundled real ECG.

    python reference/golden_signal.py        # writes fixtures/golden/signal/

For each recording (read with wfdb / pyedflib, cast to float32 as cardiaffect's readers give it):
  - <name>_bp.npy      scipy.signal.sosfiltfilt(butter(4, [0.5, 40], 'bandpass', output='sos', fs), x[:20 s])
  - mitdb208_causal.npy scipy.signal.sosfilt(the same sos, x[:20 s]) (stream mode's causal filter)
  - <name>_notch.npy   filtfilt(iirnotch(50, 30, fs)) of the above (one recording)
  - <name>_rs128.npy   scipy.signal.resample_poly(x[:20 s], 128, fs) (reduced fraction)
  - signal.json        NeuroKit2 R-peaks on the whole recording: nk.ecg_peaks(nk.ecg_clean(x, fs), fs)
                       ("nk_default": NeuroKit's own cleaning), and NeuroKit's detector on the scipy
                       band-passed signal ("nk_on_bandpass"); nk.hrv_time on nk_default's peaks.
"""
import json
import math
import pathlib

import neurokit2 as nk
import numpy as np
import pyedflib
import scipy.signal
import wfdb

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
OUT = ROOT / "fixtures" / "golden" / "signal"

RECORDINGS = [
    # name, loader, clean (healthy, at rest)
    ("mitdb208", lambda: wfdb.rdrecord(str(DATA / "mitdb208" / "208")), False),
    ("ecg_5min", lambda: wfdb.rdrecord(str(DATA / "biosignalsnotebooks" / "ecg_5min")), True),
    ("ecg_7min", lambda: wfdb.rdrecord(str(DATA / "biosignalsnotebooks" / "ecg_7min")), True),
    ("supine_1min", None, True),
]


def load(name, loader):
    if loader is None:
        r = pyedflib.EdfReader(str(DATA / "biosignalsnotebooks" / "supine_1min.edf"))
        x = r.readSignal(0)
        fs = r.getSampleFrequency(0)
        r.close()
        return np.float32(x).astype(np.float64), float(fs)
    rec = loader()
    return rec.p_signal[:, 0].astype(np.float32).astype(np.float64), float(rec.fs)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    doc = {"tools": {"scipy": scipy.__version__, "neurokit2": nk.__version__, "numpy": np.__version__},
           "band": [0.5, 40.0], "order": 4, "recordings": []}
    for name, loader, clean in RECORDINGS:
        x, fs = load(name, loader)
        seg = x[: int(20 * fs)]
        sos = scipy.signal.butter(4, [0.5, 40.0], btype="bandpass", output="sos", fs=fs)
        bp = scipy.signal.sosfiltfilt(sos, seg)
        np.save(OUT / f"{name}_bp.npy", bp)
        if name == "mitdb208":
            # Causal (stream mode): one forward pass from zero state.
            np.save(OUT / f"{name}_causal.npy", scipy.signal.sosfilt(sos, seg))
            b, a = scipy.signal.iirnotch(50.0, 30.0, fs=fs)
            np.save(OUT / f"{name}_notch.npy", scipy.signal.filtfilt(b, a, bp))
        g = math.gcd(128, int(fs))
        up, down = 128 // g, int(fs) // g
        np.save(OUT / f"{name}_rs128.npy", scipy.signal.resample_poly(seg, up, down).astype(np.float32))
        cleaned = nk.ecg_clean(x, sampling_rate=fs)
        _, info = nk.ecg_peaks(cleaned, sampling_rate=fs, method="neurokit")
        peaks = [int(p) for p in info["ECG_R_Peaks"]]
        bp_full = scipy.signal.sosfiltfilt(sos, x)
        _, info2 = nk.ecg_peaks(bp_full, sampling_rate=fs, method="neurokit")
        hrv = nk.hrv_time(peaks, sampling_rate=fs)
        doc["recordings"].append({
            "name": name, "fs": fs, "clean": clean, "samples": len(x),
            "nk_default": peaks,
            "nk_on_bandpass": [int(p) for p in info2["ECG_R_Peaks"]],
            "hrv_time": {k: float(hrv[k].iloc[0]) for k in ["HRV_MeanNN", "HRV_SDNN", "HRV_RMSSD", "HRV_pNN50"]},
        })
        print(name, fs, len(x), "peaks", len(peaks), len(info2["ECG_R_Peaks"]))
    with open(OUT / "signal.json", "w") as f:
        json.dump(doc, f)


if __name__ == "__main__":
    main()
