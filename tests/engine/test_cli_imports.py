"""Start-up cost: the CLI's list, its help and 'corrupt' load no torch, and the bench
sub-commands' modules load only when those sub-commands run."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from napari_pal.data.synthetic import make_sample_dataset

BENCH = ("napari_pal.bench.benchmark", "napari_pal.bench.speed")


def _modules_after(args: list[str]) -> tuple[int, set[str]]:
    code = ("import json, sys\n"
            "from napari_pal.cli import main\n"
            "try:\n"
            f"    rc = main({args!r})\n"
            "except SystemExit as exc:\n"
            "    rc = exc.code\n"
            "print(json.dumps([rc, sorted(sys.modules)]))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    rc, modules = json.loads(proc.stdout.strip().splitlines()[-1])
    return rc, set(modules)


@pytest.mark.parametrize("args", [[], ["--help"], ["train", "--help"], ["score", "--help"]])
def test_help_imports_no_torch_nor_bench(args):
    rc, modules = _modules_after(args)
    assert rc in (0, 2)
    assert "torch" not in modules
    assert not set(BENCH) & modules


def test_corrupt_imports_no_torch(tmp_path):
    make_sample_dataset(tmp_path / "d", n=2, size=32, bad_fraction=0.0)
    rc, modules = _modules_after(["corrupt", str(tmp_path / "d"), str(tmp_path / "c"),
                                  "--fraction", "1", "--pixels", "1", "2"])
    assert rc == 0 and (tmp_path / "c" / "corruption.csv").is_file()
    assert "torch" not in modules and not set(BENCH) & modules


@pytest.mark.parametrize("command, module", [("benchmark", BENCH[0]), ("speed", BENCH[1])])
def test_bench_commands_load_their_module_when_used(command, module):
    rc, modules = _modules_after([command, "--help"])
    assert rc == 0 and module in modules
    assert not (set(BENCH) - {module}) & modules
