"""scripts/setup.sh, with apt-get, systemctl and pip replaced by recorders on PATH.

What must hold on a real machine: the policy-rc.d that keeps apt from starting services is gone
afterwards even when apt-get fails, the services apt enabled are disabled (they would take the
demo's ports after a reboot), and the package is reinstalled only when extras are missing.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

from demo.bundle_config import ROOT

SETUP = ROOT / "scripts" / "setup.sh"


def recorder(bin_dir: Path, name: str, log: Path, exit_code: int = 0) -> None:
    script = bin_dir / name
    script.write_text(f'#!/bin/sh\necho "{name} $*" >> "{log}"\nexit {exit_code}\n')
    script.chmod(0o755)


def run_setup(tmp_path: Path, calls: str, *, apt_exit: int = 0) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Source setup.sh and run ``calls`` (bash), as root without sudo; returns what was called."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / "calls.log"
    log.write_text("")
    recorder(bin_dir, "apt-get", log, apt_exit)
    recorder(bin_dir, "systemctl", log)
    recorder(bin_dir, "update-rc.d", log)
    venv_bin = tmp_path / "venv" / "bin"
    venv_bin.mkdir(parents=True, exist_ok=True)
    recorder(venv_bin, "python", log)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "POLICY_RC_D": str(tmp_path / "policy-rc.d"),
           "AUTOPILOT_VENV": str(tmp_path / "venv")}
    result = subprocess.run(["bash", "-c", f'set -euo pipefail; source "{SETUP}"; as_root() {{ "$@"; }}; {calls}'],
                            capture_output=True, text=True, env=env, timeout=60)
    return result, log.read_text().splitlines()


def test_services_apt_installed_are_disabled_and_the_policy_is_removed(tmp_path):
    result, calls = run_setup(tmp_path, "install_packages redis-server prometheus chromium")
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "policy-rc.d").exists()
    assert any(call.startswith("apt-get install") and "redis-server prometheus chromium" in call for call in calls)
    disabling = [call for call in calls if call.startswith(("systemctl", "update-rc.d"))]
    assert disabling and all("chromium" not in call for call in disabling), calls
    assert {unit for call in disabling for unit in ("redis-server", "prometheus") if unit in call.split()} == {
        "redis-server", "prometheus"}


def test_a_failing_apt_get_leaves_no_policy_behind(tmp_path):
    result, calls = run_setup(tmp_path, "install_packages prometheus", apt_exit=100)
    assert result.returncode != 0
    assert not (tmp_path / "policy-rc.d").exists(), "policy-rc.d left in place: apt would start no service again"
    assert not any(call.startswith(("systemctl", "update-rc.d")) for call in calls)


def test_an_existing_policy_is_left_alone(tmp_path):
    policy = tmp_path / "policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 0\n")
    result, _ = run_setup(tmp_path, "install_packages prometheus", apt_exit=100)
    assert result.returncode != 0 and policy.read_text() == "#!/bin/sh\nexit 0\n"


def test_the_package_is_reinstalled_only_for_missing_extras(tmp_path):
    def pip_installs(calls: list[str]) -> list[str]:
        return [call.split()[-1].rsplit("[", 1)[1] for call in calls if " install -q -e " in call]

    _, calls = run_setup(tmp_path, "install_python_package demo; install_python_package demo")
    assert pip_installs(calls) == ["demo]"]
    _, calls = run_setup(tmp_path, "install_python_package test,bench,demo; install_python_package demo")
    assert pip_installs(calls) == ["test,bench,demo]"]
