#!/usr/bin/env python3
"""Regenerate the bundled real ECG under data/ from the PyPI packages that ship it.

    python data/make_data.py            # downloads the two wheels with pip (PyPI only)
    python data/make_data.py --wheels DIR   # uses wheels already in DIR

Needs numpy, wfdb and h5py (numpy alone for --eegmat). Writes:
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
  data/eegmat/                     real labels: the ECG of 12 people (sub-00 to sub-11) of
                                   PhysioNet's eegmat (rest vs mental arithmetic), as EEG-BIDS
                                   with ECG-only EDF files whose 16-bit samples and scaling are
                                   those of the development set's EDF files, byte for byte:
    python data/make_data.py --eegmat ../shared/data/eegmat-dev   # only this part; no download
"""
import argparse
import io
import pathlib
import shutil
import subprocess
import sys
import tempfile
import zipfile

import numpy as np

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


def edf_signal(path, label):
    """One signal of an EDF(+) file: (its 256-byte header fields, int16 samples per record)."""
    b = pathlib.Path(path).read_bytes()
    ns = int(b[252:256])
    hdr = b[256:256 + 256 * ns]
    widths = [("label", 16), ("transducer", 80), ("dimension", 8), ("pmin", 8), ("pmax", 8),
              ("dmin", 8), ("dmax", 8), ("prefilter", 80), ("nsamp", 8), ("reserved", 32)]
    fields, off = {}, 0
    for name, w in widths:
        fields[name] = [hdr[off + i * w: off + (i + 1) * w] for i in range(ns)]
        off += w * ns
    labels = [x.decode().strip() for x in fields["label"]]
    i = labels.index(label)
    nsamp = [int(x) for x in fields["nsamp"]]
    nrec, rec_len = int(b[236:244]), sum(nsamp)
    data = np.frombuffer(b[256 * (ns + 1):], dtype="<i2")[: nrec * rec_len].reshape(nrec, rec_len)
    start = sum(nsamp[:i])
    return b[:256], {k: v[i] for k, v in fields.items()}, data[:, start:start + nsamp[i]]


def write_ecg_edf(path, head, sig, data):
    """A plain EDF file of one signal: the source's header fields and samples unchanged."""
    head = bytearray(head)
    head[184:192] = b"%-8d" % 512
    head[192:236] = b" " * 44  # plain EDF: no EDF+C annotations signal
    head[252:256] = b"%-4d" % 1
    out = bytes(head) + b"".join(sig[k] for k in
                                 ["label", "transducer", "dimension", "pmin", "pmax", "dmin", "dmax",
                                  "prefilter", "nsamp", "reserved"])
    pathlib.Path(path).write_bytes(out + np.ascontiguousarray(data, dtype="<i2").tobytes())


README_EEGMAT = """Bundled with cardiaffect: the ECG of 12 people (sub-00 to sub-11) of PhysioNet's "EEG During
Mental Arithmetic Tasks" (eegmat 1.0.0; Zyma et al., Data 4(1):14, 2019; ODC-By 1.0).
run-1: rest (182 s), run-2: serial subtraction (62 s); each run is one trial (events.tsv,
trial_type rest|arithmetic). ECG only, 500 Hz, mV. Mental stress against rest, not valence or
arousal ratings. Read it as `bundled:eegmat` (cardiaffect inspect / prepare / predict).
"""


def make_eegmat(src):
    src, out = pathlib.Path(src), HERE / "eegmat"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir()
    shutil.copy(src / "participants.tsv", out)
    (out / "README").write_text(README_EEGMAT)
    # The name results tables are headed with: what the labels measure, and whose they are.
    desc = {"Name": "mental stress vs rest (PhysioNet eegmat, 12 people)",
            "BIDSVersion": "1.9.0", "License": "ODC-By-1.0",
            "Authors": ["Zyma I", "Tukaev S", "Seleznov I", "Kiyono K", "Popov A", "Chernykh M", "Shpenkov O"],
            "ReferencesAndLinks": ["Zyma et al. 2019, Data 4(1):14", "https://physionet.org/content/eegmat/1.0.0/"]}
    import json
    (out / "dataset_description.json").write_text(json.dumps(desc, indent=1) + "\n")
    for edf in sorted(src.glob("sub-*/eeg/*_eeg.edf")):
        d = out / edf.parent.relative_to(src)
        d.mkdir(parents=True, exist_ok=True)
        head, sig, data = edf_signal(edf, "ECG")
        write_ecg_edf(d / edf.name, head, sig, data)
        stem = edf.name[: -len("_eeg.edf")]
        shutil.copy(edf.parent / f"{stem}_events.tsv", d)
        shutil.copy(edf.parent / f"{stem}_eeg.json", d)
        (d / f"{stem}_channels.tsv").write_text("name\ttype\tunits\tsampling_frequency\nECG\tECG\tmV\t500\n")
    print(f"wrote {out}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wheels", help="folder holding the scipy 1.14.1 and biosignalsnotebooks 0.6.14 wheels")
    ap.add_argument("--eegmat", help="the eegmat-dev EEG-BIDS folder: write data/eegmat/ only")
    args = ap.parse_args()
    if args.eegmat:
        make_eegmat(args.eegmat)
        return
    import h5py  # only the wheels' part needs these
    import wfdb

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
