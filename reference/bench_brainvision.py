#!/usr/bin/env python3
"""BrainVision ECG-channel read: MNE (what a Python user would call) vs cardiaffect, same file.

    python reference/bench_brainvision.py [CARDIAFFECT_BINARY]

Writes 1 h of 64 float32 channels at 1000 Hz (multiplexed, 922 MB) to a temporary folder with
numpy, reads it once to warm the page cache, then times the ECG channel's read with
`mne.io.read_raw_brainvision(...).get_data(picks=["ECG"])` (median of 3) and with
`cardiaffect bench-io --file` (median of 5), on this machine, and prints the ratio.
"""
import json
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import mne
import numpy as np

BIN = sys.argv[1] if len(sys.argv) > 1 else "target/release/cardiaffect"
CH, FS, MIN = 64, 1000, 60

with tempfile.TemporaryDirectory() as d:
    d = pathlib.Path(d)
    n = FS * 60 * MIN
    names = [f"EEG{i + 1}" for i in range(CH - 1)] + ["ECG"]
    hdr = ("Brain Vision Data Exchange Header File Version 1.0\n[Common Infos]\nCodepage=UTF-8\n"
           "DataFile=b.eeg\nDataFormat=BINARY\nDataOrientation=MULTIPLEXED\n"
           f"NumberOfChannels={CH}\nSamplingInterval={1e6 / FS:g}\n[Binary Infos]\n"
           "BinaryFormat=IEEE_FLOAT_32\n[Channel Infos]\n"
           + "".join(f"Ch{i + 1}={c},,0.1,µV\n" for i, c in enumerate(names)))
    (d / "b.vhdr").write_text(hdr, encoding="utf-8")
    with open(d / "b.eeg", "wb") as f:
        block = 60 * FS
        for k in range(0, n, block):
            t = np.arange(k, min(n, k + block), dtype=np.float32)[:, None]
            f.write((np.sin(t * 0.01 + np.arange(CH, dtype=np.float32)) * 500).astype("<f4").tobytes())
    size = (d / "b.eeg").stat().st_size
    (d / "b.eeg").read_bytes()  # warm the page cache
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        raw = mne.io.read_raw_brainvision(d / "b.vhdr", preload=False, verbose=False)
        x = raw.get_data(picks=["ECG"])
        times.append(time.perf_counter() - t0)
    mne_s = statistics.median(times)
    out = subprocess.run([BIN, "bench-io", "--format", "brainvision", "--file", str(d / "b.vhdr"), "--json"],
                         check=True, capture_output=True, text=True).stdout
    ours = json.loads(out)["median_s"]
    print(f"file {size / 1e6:.1f} MB ({CH} ch float32 multiplexed, {MIN} min at {FS} Hz), page cache warm, one run")
    print(f"MNE {mne.__version__} read_raw_brainvision + get_data(picks=['ECG']): {mne_s:.3f} s = {size / 1e6 / mne_s:.0f} MB/s")
    print(f"cardiaffect: {ours:.3f} s = {size / 1e6 / ours:.0f} MB/s")
    print(f"ratio (MNE time / cardiaffect time): {mne_s / ours:.1f}x")
