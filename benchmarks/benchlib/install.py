"""Finding the tools, installing the missing ones, and saying so: a peer that is silently skipped makes
our ratios look better than they are, so every skip is printed and recorded."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

Log = Callable[[str], None]

# binary -> Debian package
APT_PACKAGES = {"nginx": "nginx-light", "wget2": "wget2", "aria2c": "aria2", "axel": "axel", "curl": "curl"}
GETM_PEER = "getm==0.0.5"
HF_TRANSFER = "hf_transfer"
PYCURL = "pycurl"

_apt_updated = False


def _apt(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(["apt-get", *args], env=env, capture_output=True, text=True, check=False)


def _apt_install(package: str, log: Log) -> bool:
    """Install one package; refresh the package lists once if the first attempt fails (a fresh image
    often has none)."""
    global _apt_updated
    if shutil.which("apt-get") is None:
        log(f"  no apt-get here: cannot install {package}")
        return False
    done = _apt(["install", "-y", "-q", package])
    if done.returncode != 0 and not _apt_updated:
        _apt_updated = True
        log("  apt-get update")
        _apt(["update", "-q"])
        done = _apt(["install", "-y", "-q", package])
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["?"]
        log(f"  apt-get install {package} failed: {tail[0]}")
    return done.returncode == 0


def ensure_binary(name: str, log: Log) -> str | None:
    """The path of `name`, installing its Debian package first if it is missing; None if that fails."""
    path = shutil.which(name)
    if path:
        return path
    package = APT_PACKAGES.get(name, name)
    log(f"{name} is missing: apt-get install -y {package}")
    if _apt_install(package, log):
        path = shutil.which(name)
    if path is None:
        log(f"{name}: not available, skipping it")
    return path


def getm_tui_binary() -> str:
    """Our CLI from the interpreter's own venv, so `python benchmarks/run.py` from /work/venv measures the
    checked-out code (installed editable) rather than whatever `getm-tui` is first on PATH."""
    beside = Path(sys.executable).with_name("getm-tui")
    if beside.exists():
        return str(beside)
    found = shutil.which("getm-tui")
    if found is None:
        raise SystemExit("getm-tui not found: pip install -e . first")
    return found


def pip_venv(venv: Path, requirement: str, log: Log) -> Path | None:
    """A venv of its own holding `requirement`, so a peer's pinned dependencies cannot disturb ours; its
    python, or None, said out loud, if it does not install."""
    log(f"installing {requirement} into {venv}")
    made = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True)
    if made.returncode != 0:
        log(f"  cannot create a venv ({made.stderr.strip()[-200:]}): skipping {requirement}")
        return None
    python = venv / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    done = subprocess.run([*pip, requirement], capture_output=True, text=True)
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["?"]
        log(f"  pip install {requirement} failed ({tail[0]}): skipping it")
        return None
    return python


def ensure_getm_peer(venv: Path, log: Log) -> str | None:
    """getm 0.0.5 (the library getm-tui grew from), or None if it does not install."""
    python = pip_venv(venv, GETM_PEER, log)
    binary = venv / "bin" / "getm"
    return str(binary) if python is not None and binary.exists() else None


def ensure_module(venv: Path, requirement: str, log: Log) -> str | None:
    """The python of a venv where `import REQUIREMENT` works (hf_transfer and pycurl have no command of
    their own), or None."""
    python = pip_venv(venv, requirement, log)
    if python is None:
        return None
    done = subprocess.run([str(python), "-c", f"import {requirement}"], capture_output=True, text=True)
    if done.returncode != 0:
        log(f"  {requirement} installed but does not import: skipping it")
        return None
    return str(python)


FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")


def help_flags(binary: str, *verb: str) -> frozenset[str]:
    """The long options `binary VERB --help` lists: a variant whose flag the binary does not know (an
    older checkout measured with --baseline) is skipped rather than failed."""
    try:
        done = subprocess.run([binary, *verb, "--help"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return frozenset()
    return frozenset(FLAG.findall(done.stdout)) if done.returncode == 0 else frozenset()


def version_of(argv: list[str]) -> str:
    """First line of a tool's version banner, for the JSON record (results are only comparable between
    runs of the same versions)."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0] if lines else "?"
