"""Every file a user names is loaded safely: a checkpoint's pickle payload never runs (even where
torch's default would unpickle it), and a missing, corrupt or hostile file, or the checkpoint
of another model, is refused with a ValueError that names the file — in the library and on the
command line."""

import sys
from pathlib import Path

import pytest
import torch

from titans_seq import TitansClassifier
from titans_seq.cli import build_cli, main
from titans_seq.training import read_checkpoint

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


class Payload:
    """Unpickling this creates ``marker``: proof that a file's code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def hostile(folder: Path) -> tuple[Path, Path]:
    marker, path = folder / "ran.txt", folder / "hostile.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {}, "extra": Payload(marker)}, path)
    return path, marker


def bad_files(folder: Path) -> dict[str, Path]:
    files = {"missing": folder / "missing.ckpt", "empty": folder / "empty.ckpt",
             "text": folder / "text.ckpt", "truncated": folder / "truncated.ckpt"}
    files["empty"].write_bytes(b"")
    files["text"].write_text("not a checkpoint\n")
    whole = folder / "whole.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1000)}, "hyper_parameters": {}}, whole)
    files["truncated"].write_bytes(whole.read_bytes()[:300])
    return files


@pytest.fixture
def unsafe_default(monkeypatch):
    """torch's default as on torch < 2.6 (which pyproject allows): unpickle everything."""
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")


def test_a_pretrained_checkpoint_never_runs_its_payload(tmp_path, unsafe_default):
    path, marker = hostile(tmp_path)
    classifier = TitansClassifier(pretrained=str(path), max_epochs=1, dim=16, depth=1, heads=2)
    with pytest.raises(ValueError, match="hostile.ckpt") as error:
        classifier.fit(["ACGT" * 8, "TTGA" * 8] * 4, [0, 1] * 4)
    assert not marker.exists()
    assert "weights_only=False" not in str(error.value)


@pytest.mark.parametrize("kind", ["missing", "empty", "text", "truncated"])
def test_bad_checkpoint_files_are_refused_by_name(tmp_path, kind):
    path = bad_files(tmp_path)[kind]
    with pytest.raises(ValueError, match=path.name):
        read_checkpoint(path)
    with pytest.raises(ValueError, match=path.name):
        TitansClassifier(pretrained=str(path), max_epochs=1).fit(["ACGT" * 8] * 4, [0, 1] * 2)


@pytest.fixture
def empty_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["titans-seq"])
    return tmp_path


def cli(*args):
    return ["test", "--config", str(CONFIGS / "forecast_etth1.yaml"),
            "--model.init_args.config.encoder.dim=16", "--trainer.enable_progress_bar=false",
            *args]


def test_the_command_line_refuses_hostile_corrupt_and_foreign_checkpoints(empty_folder,
                                                                          unsafe_default,
                                                                          capsys):
    path, marker = hostile(empty_folder)
    files = {**bad_files(empty_folder), "hostile": path}
    foreign = empty_folder / "pretraining.ckpt"  # another model's hyper-parameters
    torch.save({"state_dict": {}, "hyper_parameters": {"encoder": {}, "lr": 1e-3}}, foreign)
    files["foreign"] = foreign
    for kind, file in files.items():
        with pytest.raises(ValueError, match=file.name):
            build_cli(cli(f"--ckpt_path={file}"))
        assert not marker.exists(), kind
    # the console command: one line naming the file, exit status 2
    sys.argv = ["titans-seq", *cli(f"--ckpt_path={files['text']}")]
    with pytest.raises(SystemExit) as error:
        main()
    assert error.value.code == 2
    assert "text.ckpt" in capsys.readouterr().err


def test_a_config_with_a_syntax_error_is_named(empty_folder, capsys):
    broken = empty_folder / "broken.yaml"
    broken.write_text("model:\n  class_path: titans_seq.ForecastingModule\n   bad: [\n")
    with pytest.raises(ValueError, match="broken.yaml is not valid YAML at line 3"):
        build_cli(["fit", "--config", str(broken)])
    sys.argv = ["titans-seq", "fit", f"--config={broken}"]
    with pytest.raises(SystemExit) as error:
        main()
    assert error.value.code == 2
    printed = capsys.readouterr().err
    assert "broken.yaml" in printed and len(printed.splitlines()) == 1
