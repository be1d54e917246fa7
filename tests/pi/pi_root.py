"""An emulated Raspberry Pi (arm64 Debian under qemu-user) that runs the device install.

Builds a Debian arm64 root with ``mmdebstrap --variant=extract`` (seconds), adds what the
extract variant leaves out (usr-merge links, resolv.conf, the host's CA bundle, /proc with a
fake ARM ``cpuinfo``: onnxruntime crashes under qemu 7.2 when /proc/cpuinfo shows the x86
host; the CPU lists a Pi's /sys has: without ``/sys/devices/system/cpu/possible`` and
``present`` pytorch/cpuinfo counts no usable processor, so XNNPACK refuses to initialise and
LiteRT runs its builtin kernels, 0 ops delegated, which no real Pi does), and runs commands in it with ``chroot`` under ``QEMU_CPU`` (cortex-a72 = Pi 4,
cortex-a76 = Pi 5; qemu 7.2's default ``max`` CPU gives wrong int8 LiteRT results).
Roots and their venvs are cached between runs.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

SUITES = {"bookworm": "3.11", "trixie": "3.13"}  # Raspberry Pi OS 12 / 13 and their Pythons
# The device install, exactly as the README's "Raspberry Pi" section gives it.
DEVICE_REQUIREMENTS = ("numpy<2.5", "ai-edge-litert", "onnxruntime")
CPUINFO = "".join(
    f"processor\t: {i}\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n"
    f"CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\n"
    f"CPU revision\t: 3\n\n"
    for i in range(4)
)  # a Cortex-A72 (Pi 4)
# What a Pi 4's sysfs says of its four cores (pytorch/cpuinfo reads these before /proc/cpuinfo).
SYS_CPU = {"possible": "0-3\n", "present": "0-3\n", "online": "0-3\n", "kernel_max": "3\n"}


def unsupported_reason() -> str | None:
    """Why this machine cannot run the emulated Pi (None when it can)."""
    if os.uname().machine != "x86_64":
        return f"the emulated Pi test runs on x86_64 hosts (this is {os.uname().machine})"
    if os.geteuid() != 0:
        return "the emulated Pi test needs root (chroot, mounts)"
    for tool in ("mmdebstrap", "qemu-aarch64-static"):
        if shutil.which(tool) is None:
            return f"{tool} is missing (apt install qemu-user-static binfmt-support mmdebstrap; `make test` does it as root)"
    status = Path("/proc/sys/fs/binfmt_misc/status")
    if not status.exists():
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", "/proc/sys/fs/binfmt_misc"], capture_output=True)
    if not Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists():
        subprocess.run(["update-binfmts", "--enable", "qemu-aarch64"], capture_output=True)
    if not Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists():
        return "binfmt_misc has no qemu-aarch64 handler (mount binfmt_misc and install qemu-user-static)"
    return None


def cache_root() -> Path:
    base = os.environ.get("EDGEBERT_PI_CACHE") or str(Path.home() / ".cache" / "edgebert" / "pi")
    return Path(base)


class PiRoot:
    """One cached arm64 root with the device venv at /opt/venv."""

    def __init__(self, suite: str, cpu: str = "cortex-a72"):
        self.suite, self.cpu = suite, cpu
        key = hashlib.sha256(" ".join((suite,) + DEVICE_REQUIREMENTS).encode()).hexdigest()[:12]
        self.path = cache_root() / f"{suite}-{key}"

    def ensure(self) -> PiRoot:
        if (self.path / "opt" / "venv" / ".complete").exists():
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One builder at a time: two pytest processes building the same root into one
        # .partial directory break each other (mmdebstrap exits 25, pip fails).
        with open(self.path.with_name(self.path.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (self.path / "opt" / "venv" / ".complete").exists():
                try:
                    self._build()
                except subprocess.CalledProcessError as e:  # say what the tool printed, not just its code
                    tail = (e.stderr or b"")[-2000:]
                    tail = tail.decode(errors="replace") if isinstance(tail, bytes) else tail
                    raise RuntimeError(f"building the emulated Pi root {self.path.name} failed: {e}\n{tail}") from e
        return self

    def _build(self) -> None:
        partial = self.path.with_name(self.path.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "mmdebstrap",
                "--arch=arm64",
                "--variant=extract",
                "--quiet",
                "--include=python3,python3-venv,libstdc++6,libgcc-s1,ca-certificates",
                self.suite,
                str(partial),
            ],
            check=True,
            capture_output=True,
        )
        for d in ("bin", "sbin", "lib"):  # the extract variant does not make the usr-merge links
            top = partial / d
            if top.is_dir() and not top.is_symlink():  # bookworm still ships some files there
                subprocess.run(["cp", "-a", f"{top}/.", str(partial / "usr" / d)], check=True)
                shutil.rmtree(top)
            if not top.is_symlink():
                top.symlink_to(f"usr/{d}")
        self.run(["/usr/bin/python3", "-m", "venv", "/opt/venv"], timeout=600, root=partial)
        self.run(
            ["/opt/venv/bin/python", "-m", "pip", "install", "-q", "--disable-pip-version-check", *DEVICE_REQUIREMENTS],
            timeout=1800,
            root=partial,
        )
        (partial / "opt" / "venv" / ".complete").write_text("ok\n")
        shutil.rmtree(self.path, ignore_errors=True)
        partial.rename(self.path)

    def _prepare(self, root: Path) -> None:
        (root / "etc" / "ssl" / "certs").mkdir(parents=True, exist_ok=True)
        shutil.copyfile("/etc/resolv.conf", root / "etc" / "resolv.conf")
        host_ca = Path(os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt")
        if host_ca.is_file():
            shutil.copyfile(host_ca, root / "etc" / "ssl" / "certs" / "ca-certificates.crt")
        (root / "proc").mkdir(exist_ok=True)
        (root / "opt").mkdir(exist_ok=True)
        (root / "opt" / "cpuinfo").write_text(CPUINFO)
        cpus = root / "sys" / "devices" / "system" / "cpu"  # /sys is not mounted: plain files
        cpus.mkdir(parents=True, exist_ok=True)
        for name, text in SYS_CPU.items():
            (cpus / name).write_text(text)

    def run(
        self, argv: list[str], timeout: int = 600, check: bool = True, root: Path | None = None
    ) -> subprocess.CompletedProcess:
        """Runs ``argv`` inside the root under qemu (with /proc and the fake cpuinfo mounted)."""
        root = root or self.path
        self._prepare(root)
        env = {
            "PATH": "/opt/venv/bin:/usr/bin:/bin",
            "HOME": "/root",
            "LANG": "C.UTF-8",
            "QEMU_CPU": self.cpu,
            "PIP_CERT": "/etc/ssl/certs/ca-certificates.crt",
        }
        mounted = []
        try:
            subprocess.run(["mount", "-t", "proc", "proc", str(root / "proc")], check=True)
            mounted.append(root / "proc")
            subprocess.run(
                ["mount", "--bind", str(root / "opt" / "cpuinfo"), str(root / "proc" / "cpuinfo")], check=True
            )
            mounted.append(root / "proc" / "cpuinfo")
            chroot = shutil.which("chroot") or "/usr/sbin/chroot"  # env's PATH is the root's, not the host's
            return subprocess.run(
                [chroot, str(root), *argv], env=env, capture_output=True, text=True, timeout=timeout, check=check
            )
        finally:
            for m in reversed(mounted):
                subprocess.run(["umount", "-l", str(m)], capture_output=True)
