#!/usr/bin/env python3
"""prepare, end to end, against the same pipeline in Python, on the same input, in one run.

    python reference/bench_prepare.py [--cardiaffect target/release/cardiaffect] [--minutes 60] [--json]

Input: a DREAMER.mat written by scipy.io.savemat, 256 Hz two-lead ECG, `--minutes` in total
(4 subjects x 18 videos, stimulus + baseline), made of the bundled real ECG (MIT-BIH 208 and
the biosignalsnotebooks recordings) resampled to 256 Hz and tiled.

Python pipeline (one process, BLAS/OpenMP limited to one thread): scipy.io.loadmat; per
segment NeuroKit2 ecg_clean and ecg_peaks; scipy.signal.resample_poly to 128 Hz; numpy
windowing (10 s, stride 10 s); np.save of all windows and a pandas CSV of their metadata.

cardiaffect: `prepare --source dreamer:DIR` into an empty folder (so nothing is reused), with
--jobs 1 (one core) and with all cores. Each is run --repeat times (default 3) and the median
kept. Prints seconds and the ratios (Python time / ours).
Needs: numpy, scipy, pandas, neurokit2, wfdb, pyedflib (reference/requirements.txt).
"""
import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

for var in ["OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"]:
    os.environ[var] = "1"

import neurokit2 as nk  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyedflib  # noqa: E402
import scipy.io  # noqa: E402
import scipy.signal  # noqa: E402
import wfdb  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
FS = 256


def real_ecg_256():
    parts = []
    r = wfdb.rdrecord(str(ROOT / "data" / "mitdb208" / "208"))
    parts.append(scipy.signal.resample_poly(r.p_signal[:, 0], 32, 45))
    for name in ["ecg_5min", "ecg_7min"]:
        r = wfdb.rdrecord(str(ROOT / "data" / "biosignalsnotebooks" / name))
        parts.append(scipy.signal.resample_poly(r.p_signal[:, 0], 32, 125))
    e = pyedflib.EdfReader(str(ROOT / "data" / "biosignalsnotebooks" / "supine_1min.edf"))
    parts.append(scipy.signal.resample_poly(e.readSignal(0), 32, 125))
    e.close()
    return np.concatenate(parts)


def write_dreamer(path, minutes):
    base = real_ecg_256()
    subjects, videos = 4, 18
    seg_s = minutes * 60 / (subjects * videos)
    stim_n, base_n = int(seg_s * 0.85 * FS), int(seg_s * 0.15 * FS)
    data = np.empty((1, subjects), dtype=object)
    pos = 0

    def take(n):
        nonlocal pos
        idx = (pos + np.arange(n)) % len(base)
        pos += n
        x = base[idx]
        return np.stack([x, 0.9 * x], 1)

    for s in range(subjects):
        ecg = np.empty((1, 1), dtype=[("baseline", "O"), ("stimuli", "O")])
        b = np.empty((videos, 1), dtype=object)
        st = np.empty((videos, 1), dtype=object)
        for v in range(videos):
            b[v, 0] = take(base_n)
            st[v, 0] = take(stim_n)
        ecg[0, 0] = (b, st)
        subj = np.empty((1, 1), dtype=[("Age", "O"), ("Gender", "O"), ("ECG", "O"), ("ScoreValence", "O"), ("ScoreArousal", "O"), ("ScoreDominance", "O")])
        ones = np.ones((videos, 1)) * 3
        subj[0, 0] = (np.array([[30.0]]), "male", ecg, ones, ones, ones)
        data[0, s] = subj
    top = np.empty((1, 1), dtype=[("Data", "O"), ("ECG_SamplingRate", "O"), ("EEG_SamplingRate", "O")])
    top[0, 0] = (data, np.array([[256.0]]), np.array([[128.0]]))
    scipy.io.savemat(path, {"DREAMER": top}, do_compression=False)


def python_pipeline(mat_path, out_dir):
    m = scipy.io.loadmat(mat_path)
    data = m["DREAMER"][0, 0]["Data"]
    win = 10 * 128
    windows, rows = [], []
    for s in range(data.shape[1]):
        subj = data[0, s][0, 0]
        for seg in ["stimuli", "baseline"]:
            cells = subj["ECG"][0, 0][seg]
            for v in range(cells.shape[0]):
                x = cells[v, 0][:, 0]
                clean = nk.ecg_clean(x, sampling_rate=FS)
                _, info = nk.ecg_peaks(clean, sampling_rate=FS)
                y = scipy.signal.resample_poly(clean, 1, 2)
                n = len(y) // win
                if n:
                    windows.append(y[: n * win].reshape(n, win).astype(np.float32))
                    peaks = info["ECG_R_Peaks"]
                    for k in range(n):
                        in_w = peaks[(peaks >= k * 10 * FS) & (peaks < (k + 1) * 10 * FS)]
                        hr = 60 * (len(in_w) - 1) / (np.ptp(in_w) / FS) if len(in_w) > 1 else np.nan
                        rows.append({"subject": s + 1, "trial": v + 1, "segment": seg, "start_s": k * 10.0, "hr_bpm": hr})
    w = np.concatenate(windows)
    np.save(out_dir / "windows.npy", w)
    pd.DataFrame(rows).to_csv(out_dir / "windows.csv")
    return w.shape[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cardiaffect", default=str(ROOT / "target" / "release" / "cardiaffect"))
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each; the median is reported")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    tmp = pathlib.Path(tempfile.mkdtemp())
    src = tmp / "dreamer"
    src.mkdir()
    write_dreamer(src / "DREAMER.mat", a.minutes)
    times = []
    for _ in range(a.repeat):
        t = time.perf_counter()
        n_py = python_pipeline(src / "DREAMER.mat", tmp)
        times.append(time.perf_counter() - t)
    t_py = sorted(times)[len(times) // 2]

    def run_ours(jobs):
        times = []
        for _ in range(a.repeat):
            out = tmp / f"corpus-{jobs}"
            shutil.rmtree(out, ignore_errors=True)
            cmd = [a.cardiaffect, "prepare", "--source", f"dreamer:{src}", "--out", str(out), "--json"]
            if jobs:
                cmd += ["--jobs", str(jobs)]
            t = time.perf_counter()
            r = subprocess.run(cmd, capture_output=True, text=True)
            times.append(time.perf_counter() - t)
            if r.returncode != 0:
                sys.exit(r.stderr)
        return sorted(times)[len(times) // 2], json.loads(r.stdout)["counts"]["windows"]

    t1, n1 = run_ours(1)
    t2, n2 = run_ours(0)
    res = {"input_minutes": a.minutes, "python_s": t_py, "python_windows": n_py, "cardiaffect_1core_s": t1,
           "cardiaffect_all_cores_s": t2, "cardiaffect_windows": n1, "speedup_1core": t_py / t1, "speedup_all_cores": t_py / t2,
           "cores": os.cpu_count()}
    shutil.rmtree(tmp, ignore_errors=True)
    if a.json:
        print(json.dumps(res))
        return
    print(f"input: DREAMER.mat, {a.minutes:.0f} min of 256 Hz ECG (scipy.io.savemat)")
    print(f"Python (loadmat + NeuroKit2 clean/peaks + resample_poly + numpy + np.save), 1 thread: {t_py:.2f} s, {n_py} windows")
    print(f"cardiaffect prepare, 1 core:  {t1:.2f} s, {n1} windows -> {t_py / t1:.1f}x faster")
    print(f"cardiaffect prepare, {os.cpu_count()} cores: {t2:.2f} s -> {t_py / t2:.1f}x faster")


if __name__ == "__main__":
    main()
