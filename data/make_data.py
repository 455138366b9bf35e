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
  data/biosignalsnotebooks/ecg_5min.hea/.dat, ecg_7min.hea/.dat
                                   the raw 16-bit ADC of ecg_5_min.h5 and
                                   signal_sample_single_hub_ECG_2018_7_5.h5, losslessly as WFDB
                                   format 16 (digital = ADC - 32768); mV through the biosignalsplux
                                   ECG transfer function (ADC/2^16 - 0.5) * 3 V / 1019 (gain), i.e.
                                   1019 * 65536 / 3000 adu per mV — the same +-1.47 mV range its
                                   own EDF export (supine_1min.edf) declares.
"""
import argparse
import io
import pathlib
import shutil
import subprocess
import sys
import tempfile
import zipfile

import h5py
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
        for src, name, what in [
            ("ecg_5_min.h5", "ecg_5min", "healthy adult at rest, 5 min"),
            ("signal_sample_single_hub_ECG_2018_7_5.h5", "ecg_7min", "healthy adult, 6 min 57 s"),
        ]:
            with z.open("biosignalsnotebooks/notebook_files/osf_files/signal_samples/" + src) as f:
                h = h5py.File(io.BytesIO(f.read()), "r")
            mac = list(h.keys())[0]
            attrs = h[mac].attrs
            assert int(attrs["sampling rate"]) == 1000 and int(attrs["resolution"][0]) == 16
            adc = h[mac]["raw"]["channel_1"][:, 0].astype(np.int64)
            wfdb.wrsamp(
                name,
                fs=1000,
                units=["mV"],
                sig_name=["ECG"],
                d_signal=(adc - 32768).reshape(-1, 1),
                fmt=["16"],
                adc_gain=[1019 * 65536 / 3000],
                baseline=[0],
                comments=[f"biosignalsnotebooks 0.6.14 {src} ({attrs['device']}, {attrs['date']}): {what}"],
                write_dir=str(dst),
            )
    shutil.rmtree(tmp, ignore_errors=True)
    print("wrote", out, dst)


if __name__ == "__main__":
    main()
