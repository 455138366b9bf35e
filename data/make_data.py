#!/usr/bin/env python3
"""Regenerate the bundled real ECG under data/ from the PyPI packages that ship it.

    python data/make_data.py            # downloads the two wheels with pip (PyPI only)
    python data/make_data.py --wheels DIR   # uses wheels already in DIR

Needs numpy and wfdb. Writes:
  data/mitdb208/208.hea, 208.dat  MIT-BIH Arrhythmia record 208, lead MLII, 19:35-24:35
                                   (the excerpt scipy <= 1.14 ships as scipy/misc/ecg.dat),
                                   as a WFDB format-212 record with the original ADC units
                                   (gain 200 adu/mV, baseline 1024).
  data/biosignalsnotebooks/supine_1min.edf
                                   copied byte for byte from biosignalsnotebooks 0.6.14.
"""
import argparse
import pathlib
import shutil
import subprocess
import sys
import tempfile
import zipfile

import numpy as np
import wfdb

HERE = pathlib.Path(__file__).resolve().parent
SCIPY = "scipy==1.14.1"
BSN = "biosignalsnotebooks==0.6.14"


def fetch(spec, dest, platform=True):
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(dest), spec]
    if platform:
        cmd += ["--only-binary=:all:", "--platform", "manylinux2014_x86_64", "--python-version", "3.11"]
    subprocess.run(cmd, check=True)


def wheel(dest, prefix):
    found = sorted(pathlib.Path(dest).glob(prefix + "-*.whl"))
    if not found:
        sys.exit(f"no {prefix} wheel in {dest}")
    return found[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wheels", help="folder holding the scipy 1.14.1 and biosignalsnotebooks 0.6.14 wheels")
    args = ap.parse_args()
    tmp = pathlib.Path(tempfile.mkdtemp())
    wd = pathlib.Path(args.wheels) if args.wheels else tmp
    if not args.wheels:
        fetch(SCIPY, wd)
        fetch(BSN, wd, platform=False)

    with zipfile.ZipFile(wheel(wd, "scipy")) as z:
        with z.open("scipy/misc/ecg.dat") as f:
            ecg = np.load(f)["ecg"].astype(np.int64)  # uint16 ADC, mV = (x - 1024) / 200
    out = HERE / "mitdb208"
    out.mkdir(exist_ok=True)
    wfdb.wrsamp(
        "208",
        fs=360,
        units=["mV"],
        sig_name=["MLII"],
        d_signal=ecg.reshape(-1, 1),
        fmt=["212"],
        adc_gain=[200.0],
        baseline=[1024],
        comments=["MIT-BIH Arrhythmia Database record 208, lead MLII, 19:35-24:35 (excerpt shipped by scipy 1.14.1 as scipy/misc/ecg.dat)"],
        write_dir=str(out),
    )

    with zipfile.ZipFile(wheel(wd, "biosignalsnotebooks")) as z:
        src = "biosignalsnotebooks/notebook_files/osf_files/signal_samples/supine_1min.edf"
        dst = HERE / "biosignalsnotebooks"
        dst.mkdir(exist_ok=True)
        with z.open(src) as f, open(dst / "supine_1min.edf", "wb") as g:
            shutil.copyfileobj(f, g)
    shutil.rmtree(tmp, ignore_errors=True)
    print("wrote", out, dst)


if __name__ == "__main__":
    main()
