"""Datasets: HDF5 layout, determinism across worker counts, atomic writes, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest

from sonoedge.errors import ConfigError, RecordingError
from sonoedge.synth.datasets import DatasetSpec, make_sample, read_spec, write_dataset


def test_bmode_dataset_is_chunked_and_records_its_spec(tmp_path: Path) -> None:
    spec = DatasetSpec("bmode", n=3, seed=4, size=32)
    calls: list[int] = []
    path = write_dataset(spec, tmp_path / "ds.h5", workers=1, progress=calls.append)
    assert calls == [1, 2, 3]
    with h5py.File(path) as f:
        assert f["speckled"].shape == (3, 32, 32) and f["speckled"].chunks == (1, 32, 32)
        assert f["clean"].dtype == np.float32
        assert np.array_equal(f["speckled"][1], make_sample(spec, 1)["speckled"])
    assert read_spec(path) == spec


def test_parallel_and_serial_give_the_same_file(tmp_path: Path) -> None:
    spec = DatasetSpec("bubbles", n=3, seed=1, size=32, frames=3)
    a = write_dataset(spec, tmp_path / "a.h5", workers=1)
    b = write_dataset(spec, tmp_path / "b.h5", workers=2)
    with h5py.File(a) as fa, h5py.File(b) as fb:
        assert set(fa) == set(fb) >= {"frames", "params", "positions_m", "track_ids"}
        for key in fa:
            assert np.array_equal(fa[key][()], fb[key][()])
        offsets = fa["position_offsets"][()]
        assert len(offsets) == 3 * 3 + 1 and offsets[-1] == len(fa["positions_m"])


def test_splits_use_disjoint_seeds() -> None:
    train = DatasetSpec("doppler", n=10, seed=0)
    held = DatasetSpec("doppler", n=10, seed=0, split="eval")
    assert not {train.sample_seed(i) for i in range(10)} & {held.sample_seed(i) for i in range(10)}


def test_interrupted_write_leaves_no_file(tmp_path: Path) -> None:
    def stop(done: int) -> None:
        raise KeyboardInterrupt

    out = tmp_path / "ds.h5"
    with pytest.raises(KeyboardInterrupt):
        write_dataset(DatasetSpec("enhance", n=2, seed=0, size=32), out, workers=1, progress=stop)
    assert list(tmp_path.iterdir()) == []


def test_bad_specs() -> None:
    with pytest.raises(ConfigError, match="n=0"):
        DatasetSpec("bmode", n=0, seed=0)
    with pytest.raises(ConfigError, match="task"):
        DatasetSpec("sweeps", n=1, seed=0)
    with pytest.raises(ConfigError, match="L11-5v"):
        DatasetSpec("bmode", n=1, seed=0, probe="nope")
    with pytest.raises(RecordingError, match="does not exist"):
        write_dataset(DatasetSpec("bmode", n=1, seed=0), "/nonexistent/dir/x.h5")


def test_generator_engine_writes_the_physics_layout_for_unseen_frequencies(
    tmp_path: Path,
) -> None:
    spec = DatasetSpec(
        "bubbles",
        n=2,
        seed=5,
        size=32,
        frames=2,
        split="eval",
        engine="generator",
        mirror_average=1,
    )
    path = write_dataset(spec, tmp_path / "g.h5", workers=1)
    physics = write_dataset(replace(spec, engine="physics"), tmp_path / "p.h5", workers=1)
    with h5py.File(path) as f, h5py.File(physics) as g:
        assert {k: f[k].shape[1:] for k in f} == {k: g[k].shape[1:] for k in g}
        f0_mhz = f["params"][:, 0]
        assert np.all((f0_mhz >= 6.0) & (f0_mhz <= 7.0))  # the card's held-out band
        assert json.loads(f.attrs["generator"])["name"] == "ulm-generator"
        again = make_sample(spec, 1)
        np.testing.assert_array_equal(f["frames"][1], again["frames"])
        rows = slice(*f["position_offsets"][2:4])
        np.testing.assert_array_equal(f["positions_m"][rows], again["positions_m"][0])
    assert read_spec(path) == spec


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"task": "bmode"}, "only 'bubbles'"),
        ({"engine": "gan"}, "engine='gan'"),
        ({"mirror_average": 3}, "mirror_average=3"),
    ],
)
def test_bad_generator_specs(fields: dict[str, object], match: str) -> None:
    base: dict[str, object] = {"task": "bubbles", "n": 1, "seed": 0, "engine": "generator"}
    with pytest.raises(ConfigError, match=match):
        DatasetSpec(**{**base, **fields})  # type: ignore[arg-type]


def test_generator_engine_refuses_sizes_it_cannot_draw(tmp_path: Path) -> None:
    spec = DatasetSpec("bubbles", n=1, seed=0, size=30, frames=1, engine="generator")
    with pytest.raises(ConfigError, match="multiple of 4"):
        write_dataset(spec, tmp_path / "g.h5", workers=1)
    assert list(tmp_path.iterdir()) == []


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys; from sonoedge.cli import main; sys.argv = ['sonoedge', *sys.argv[1:]]; main()"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=120,
        encoding="utf-8",
    )


def test_cli_writes_a_dataset_and_reports_errors_cleanly(tmp_path: Path) -> None:
    out = tmp_path / "d.h5"
    ok = _cli("synth", "doppler", "--n", "2", "--size", "32", "--frames", "4", "--out", str(out))
    assert ok.returncode == 0, ok.stderr
    assert read_spec(out).task == "doppler"
    bad = _cli("synth", "bmode", "--n", "0", "--out", str(tmp_path / "x.h5"))
    assert bad.returncode == 2
    assert "n=0" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "x.h5").exists()


def test_sweep_task_records_poses_and_imu(tmp_path: Path) -> None:
    spec = DatasetSpec("sweep", n=1, seed=0, size=32, frames=4)
    with h5py.File(write_dataset(spec, tmp_path / "s.h5", workers=1)) as f:
        assert f["frames"].shape[:2] == (1, 4) and f["frames"].dtype == np.uint8
        assert f["poses"].shape == (1, 4, 4, 4)
        assert f["gyro_dps"].shape[2] == 3 and f["gyro_dps"].shape == f["accel_g"].shape
        assert np.allclose(f["poses"][0, :, 3], [0, 0, 0, 1])
