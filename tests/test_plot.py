"""`esrgan plot` of a chain of runs: a run resumed in a new folder replaces the earlier run from its start."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from esrgan.training.plot import PlotError, chain_records


def _run(folder: Path, records: list[dict]) -> Path:
    folder.mkdir(parents=True)
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


def _rec(stage: str, split: str, it: int, value: float) -> dict:
    return {
        "stage": stage,
        "split": split,
        "iter": it,
        "time": 0.0,
        "lpips" if split == "val" else "loss": value,
    }


def test_a_later_run_replaces_the_earlier_from_its_first_iteration_of_that_stage(tmp_path: Path) -> None:
    first = _run(tmp_path / "a", [
        _rec("pretrain", "train", 10, 1.0),
        *(_rec("gan", "train", i, 0.5) for i in (1, 2, 3, 4)),
        _rec("gan", "val", 4, 0.30),  # the branch the earlier run went on with past iteration 3
    ])  # fmt: skip
    second = _run(tmp_path / "b", [_rec("gan", "train", 3, 0.4), _rec("gan", "val", 5, 0.28)])
    records = chain_records([first, second])
    got = [(r["stage"], r["split"], r["iter"], r.get("loss", r.get("lpips"))) for r in records]
    assert got == [
        ("pretrain", "train", 10, 1.0),
        ("gan", "train", 1, 0.5),
        ("gan", "train", 2, 0.5),
        ("gan", "train", 3, 0.4),
        ("gan", "val", 5, 0.28),
    ]


def test_plot_of_a_chain_writes_one_png_to_the_last_run(tmp_path: Path) -> None:
    from esrgan.cli import app

    first = _run(tmp_path / "a", [_rec("gan", "train", i, 1.0 / i) for i in (1, 2, 3)])
    second = _run(tmp_path / "b", [_rec("gan", "train", i, 1.0 / i) for i in (3, 4)])
    res = CliRunner().invoke(app, ["plot", str(first), str(second)])
    assert res.exit_code == 0, res.output
    assert (second / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert not (first / "curves.png").exists()
    with Image.open(second / "curves.png") as img:  # palette PNG: small enough for a figure kept in git
        assert img.mode == "P" and img.size[0] > 100


def test_a_chain_with_a_folder_that_is_not_a_run_names_it(tmp_path: Path) -> None:
    first = _run(tmp_path / "a", [_rec("gan", "train", 1, 1.0)])
    with pytest.raises(PlotError, match="nothing"):
        chain_records([first, tmp_path / "nothing"])
