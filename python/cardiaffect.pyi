"""cardiaffect: ECG dataset readers, NeuroKit2-named signal functions and subject-safe folds."""
from os import PathLike
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

__version__: str

Path = Union[str, "PathLike[str]"]

class ReadError(OSError):
    """A file that cannot be read as asked."""
    file: Optional[str]
    """The file the error is about, when known."""
    field: Optional[str]
    """The field, variable or option that was wrong, when known."""

class Recording:
    """One recording: an ECG lead in physical units and what its file says about it."""
    signal: npt.NDArray[np.float64]
    """float64; a copy-on-write view of the file where it stores uncompressed doubles."""
    fs: float
    dataset: str
    source: str
    subject: str
    trial: str
    segment: Optional[str]
    lead: str
    unit: Optional[str]
    labels: Dict[str, Optional[float]]
    label_scales: Dict[str, dict]
    meta: Dict[str, str]
    @property
    def channels(self) -> List[str]: ...
    def load_channel(self, name: str) -> Tuple[npt.NDArray[np.float64], float]: ...

class Recordings(Sequence[Recording]):
    """What `read` returns: the recordings, and what was skipped and why."""
    skipped: List[dict]
    warnings: List[str]
    def __len__(self) -> int: ...
    def __getitem__(self, i: int) -> Recording: ...  # type: ignore[override]
    def __iter__(self) -> Iterator[Recording]: ...

class Corpus:
    """A corpus folder written by `prepare`, checked against its checksums."""
    def __init__(self, path: Path) -> None: ...
    def __len__(self) -> int: ...
    path: str
    window_len: int
    fs: float
    label_columns: List[str]
    windows: npt.NDArray[np.float32]
    """`[n, window_len]`, a read-only memory map of windows.npy."""
    meta: object
    """A pandas DataFrame when pandas is installed, else a dict of arrays and lists; a
    categorical label column `c` has its class names beside it as `c_name`."""
    def labels(self, task: str, threshold: Optional[float] = None) -> dict:
        """`y` (int64, -1 unlabeled), `classes`, `counts`, `rule`."""

class Model:
    """A model folder (pre-trained, "bundled", or fine-tuned)."""
    @staticmethod
    def load(path: str) -> "Model": ...
    path: str
    window_len: int
    fs: Optional[float]
    classes: Optional[List[str]]
    def embed(self, windows: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
        """CLS embeddings [n, d_model] of windows [n, window_len] (each z-scored here)."""
    def predict_proba(self, windows: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
        """Class probabilities [n, classes], before calibration (fine-tuned models only)."""
    def predict(self, ecg: npt.NDArray[np.floating], fs: float, hop: Optional[float] = None, calibrate_from: Optional[Tuple[float, float]] = None) -> object:
        """The timeline `cardiaffect predict` writes: start_s, end_s, quality, hr_bpm, p_<class>
        (a pandas DataFrame when pandas is installed, else a dict); fine-tuned models only."""
    config: dict
    """config.json: what reference/model.py's Model(config) takes."""
    def state_dict(self) -> Dict[str, npt.NDArray[np.float32]]:
        """The weights in PyTorch's layout (the names `cardiaffect export` writes), as numpy."""
    def to_torch_state_dict(self) -> dict:
        """state_dict() as torch tensors (needs torch)."""

def read(path: Path, format: str = "auto", lead: Optional[str] = None, fs: Optional[float] = None) -> Recordings: ...
def ecg_clean(ecg_signal: npt.ArrayLike, sampling_rate: float = 1000.0, lowcut: float = 0.5, highcut: float = 40.0, order: int = 4, powerline: Optional[float] = None) -> npt.NDArray[np.float64]: ...
def ecg_peaks(ecg_cleaned: npt.ArrayLike, sampling_rate: float = 1000.0) -> npt.NDArray[np.int64]: ...
def hrv_time(peaks: npt.NDArray[np.int64], sampling_rate: float = 1000.0) -> Optional[Dict[str, float]]: ...
def resample(signal: npt.ArrayLike, sampling_rate: float, desired_sampling_rate: float) -> npt.NDArray[np.float64]: ...
def prepare(sources: Union[Path, Sequence[Path]], out: Path, fs: float = 128.0, window: float = 10.0, stride: float = 4.0, lead: Optional[str] = None, input_fs: Optional[float] = None, band: Tuple[float, float] = (0.5, 40.0), dtype: str = "float32") -> Corpus:
    """Build (or bring up to date) a corpus folder, as `cardiaffect prepare` does; sources are
    PATH or FORMAT:PATH."""
def folds(corpus: Union[Corpus, Path], task: str = "arousal", protocol: str = "subject-independent", n_folds: int = 5, seed: int = 1, val_fraction: float = 0.2) -> List[Tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]]: ...
