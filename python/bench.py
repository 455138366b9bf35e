"""Speed of the Python package against what a Python user would run instead, in one run on one
machine (a benchmark that prints figures, not a test):

- reading a DREAMER.mat (4 h of 256 Hz two-lead ECG, written by scipy.io.savemat as in
  reference/bench_prepare.py): `cardiaffect.read` against `scipy.io.loadmat` plus the code that
  pulls out the same ECG arrays (every trial's stimuli and baseline, lead 1);
- R-peaks on 1 h of 256 Hz ECG: `cardiaffect.ecg_peaks` against NeuroKit2's `ecg_peaks`
  (method "neurokit"), on the same cleaned signal.

    python python/bench.py [--minutes 240] [--repeat 3]

Each side's best of `--repeat` runs; the ratio is Python time / cardiaffect time.
"""
import argparse
import pathlib
import sys
import tempfile
import time

import numpy as np
import scipy.io

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "reference"))
import bench_prepare  # noqa: E402  (the same DREAMER writer and real ECG as the prepare bench)

import cardiaffect as ca  # noqa: E402


def best(f, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = f()
        times.append(time.perf_counter() - t)
    return min(times), out


def scipy_read(path):
    m = scipy.io.loadmat(path)
    data = m["DREAMER"][0, 0]["Data"]
    out = []
    for s in range(data.shape[1]):
        ecg = data[0, s][0, 0]["ECG"][0, 0]
        # In cardiaffect's order: each video's stimuli, then its baseline.
        for v in range(ecg["stimuli"].shape[0]):
            for seg in ["stimuli", "baseline"]:
                out.append(np.ascontiguousarray(ecg[seg][v, 0][:, 0], dtype=np.float64))
    return out


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--minutes", type=float, default=240)
    a.add_argument("--repeat", type=int, default=3)
    a = a.parse_args()
    import neurokit2 as nk

    with tempfile.TemporaryDirectory() as d:
        path = pathlib.Path(d) / "DREAMER.mat"
        bench_prepare.write_dreamer(path, a.minutes)
        size = path.stat().st_size
        t_py, arrays = best(lambda: scipy_read(path), a.repeat)
        t_ca, signals = best(lambda: [r.signal for r in ca.read(path)], a.repeat)
        assert len(signals) == len(arrays)
        assert all(np.array_equal(x, y, equal_nan=True) for x, y in zip(signals, arrays))
        print(f"read DREAMER.mat ({size / 1e6:.0f} MB, {a.minutes:.0f} min): scipy.io.loadmat + extraction {t_py:.4f} s, "
              f"cardiaffect.read {t_ca:.4f} s: {t_py / t_ca:.1f}x")
        # cardiaffect's arrays are views of the mapped file (scipy's sit in memory): the same,
        # with one pass over every sample after reading, so that neither side defers work.
        total = lambda xs: sum(float(x.sum()) for x in xs)
        t_py2, _ = best(lambda: total(scipy_read(path)), a.repeat)
        t_ca2, _ = best(lambda: total(r.signal for r in ca.read(path)), a.repeat)
        print(f"  the same and a sum over every sample: scipy {t_py2:.4f} s, cardiaffect {t_ca2:.4f} s: {t_py2 / t_ca2:.1f}x")

    base = bench_prepare.real_ecg_256()
    n = 3600 * 256
    x = base[np.arange(n) % len(base)]
    clean = nk.ecg_clean(x, sampling_rate=256, method="neurokit")
    t_nk, (_, info) = best(lambda: nk.ecg_peaks(clean, sampling_rate=256, method="neurokit"), a.repeat)
    t_ca, peaks = best(lambda: ca.ecg_peaks(clean, sampling_rate=256), a.repeat)
    print(f"ecg_peaks, 1 h at 256 Hz: NeuroKit2 {t_nk:.3f} s ({len(info['ECG_R_Peaks'])} peaks), "
          f"cardiaffect {t_ca:.3f} s ({len(peaks)} peaks): {t_nk / t_ca:.1f}x")


if __name__ == "__main__":
    main()
