"""project.py and cli.py: paths from the repo root and from code/, data behind a symbolic link, config errors,
the shared flags."""
import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from classes import load_cifake
from realfake import cli
from realfake.project import REPO_ROOT, ProjectError, absolute, cifake_root, config_path, dataset_dir, git_commit, shown


@pytest.mark.parametrize("cwd", [".", "code"])
def test_paths_resolve_the_same_from_root_and_code(cwd):
    script = ("import sys; sys.path.insert(0, '{}'); from realfake import project; "
              "print(project.config_path('CIFAKE_dir'))")
    code_dir = "code" if cwd == "." else "."
    run = subprocess.run([sys.executable, "-c", script.format(code_dir)], cwd=REPO_ROOT / cwd,
                         capture_output=True, text=True, check=True)
    assert Path(run.stdout.strip()) == REPO_ROOT / "data" / "CIFAKE"


def test_the_commit_is_dirty_for_changed_content_not_for_a_lost_executable_bit(tmp_path):
    git = lambda *a: subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *a], cwd=tmp_path,
                                    check=True, capture_output=True)
    script = tmp_path / "run"
    script.write_text("echo hi\n")
    script.chmod(0o755)
    git("init", "-q")
    git("add", "run")
    git("commit", "-qm", "a script")
    commit = git_commit(tmp_path)
    assert len(commit) == 40
    script.chmod(0o644)                               # as a copy to another machine may leave it
    assert git_commit(tmp_path) == commit
    script.write_text("echo bye\n")
    assert git_commit(tmp_path) == commit + "-dirty"


def test_bad_config_key_names_the_key():
    with pytest.raises(ProjectError, match="'CIFAKE_dir'"):
        config_path("CIFAKE_dir", {"CIFAKE_dir": 3})
    with pytest.raises(ProjectError, match="'nothing'"):
        config_path("nothing")


def test_data_behind_a_symbolic_link_keeps_its_repo_path(sample_root, tmp_path):
    """data/CIFAKE is often a link to a disk elsewhere: paths stay where config.json puts them, and load."""
    link = tmp_path / "repo_data" / "CIFAKE"
    link.parent.mkdir()
    link.symlink_to(sample_root / "CIFAKE", target_is_directory=True)
    assert absolute(link) == link and cifake_root(link) == link
    assert len(load_cifake(link, "test", verbose=False)) == 400


def test_shown_paths_are_relative_to_the_repo():
    assert shown(REPO_ROOT / "data" / "CIFAKE") == str(Path("data") / "CIFAKE")
    assert shown("/elsewhere/x") == "/elsewhere/x"


def test_asking_for_a_sample_path_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr("realfake.project.load_config",
                        lambda: {"CIFAKE_dir": "data/CIFAKE", "sample_dir": str(tmp_path / "s")})
    assert dataset_dir("CIFAKE_dir", sample=True) == tmp_path / "s" / "CIFAKE"
    assert not (tmp_path / "s").exists()


def test_shared_flags_and_positive_integers():
    parser = cli.parser("doc", data="CIFAKE folder")
    args = parser.parse_args(["--device", "cpu", "--data", "x"])
    assert (args.device, args.sample, args.data) == ("cpu", False, "x")
    assert not hasattr(cli.parser("doc", sample=False).parse_args([]), "sample")
    assert cli.positive_int("3") == 3
    for bad in ("0", "-1", "two"):
        with pytest.raises(argparse.ArgumentTypeError):
            cli.positive_int(bad)
