"""Build the demo's image with podman and run it, as root, on this machine.

Facts this relies on (Debian's podman 4.3, checked on the CI's kind of machine): images
from docker.io cannot be pulled, so the base is built with ``debootstrap`` from the Debian
mirror apt already uses and loaded with ``podman import``; the default runtime (crun) fails
here, runc with cgroupfs works; without explicit ``--ulimit`` flags setrlimit is refused.
The base image is kept between runs under a tag naming its recipe, so only the first run
pays for debootstrap (about a minute).

Containers get a unique name and are removed (only they) by `Container.close`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

from tests.servers._started import Started

__all__ = ["PODMAN", "Container", "PodmanUnavailable", "build_demo_image", "ensure_base_image"]

REPO = Path(__file__).resolve().parents[2]
PODMAN = ["podman", "--runtime", "runc", "--cgroup-manager=cgroupfs"]
LIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
# Bump the suffix when the recipe below changes, so a stale cached base is not reused.
BASE_RECIPE = "v1"
DEMO_IMAGE = "localhost/asgi-supervisor-demo:test"


class PodmanUnavailable(RuntimeError):
    """podman, runc or debootstrap is missing, or we are not root."""


def podman(*args: str, timeout: float = 120.0, check: bool = True) -> str:
    """Run ``podman ARGS`` (with runc and cgroupfs); return its stdout.

    Raises:
        RuntimeError: it failed (with *check*), naming the command and its output.
        subprocess.TimeoutExpired: it ran longer than *timeout* seconds.
    """
    command = [*PODMAN, *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed with status {result.returncode}:\n"
            f"{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )
    return result.stdout


def check_tools() -> None:
    """Raise PodmanUnavailable unless podman, runc and debootstrap are here and we are root."""
    missing = [tool for tool in ("podman", "runc", "debootstrap") if shutil.which(tool) is None]
    if missing:
        raise PodmanUnavailable(
            f"{', '.join(missing)} not installed; make system-deps installs them from Debian."
        )
    if os.geteuid() != 0:
        raise PodmanUnavailable("The image test runs podman and debootstrap as root.")


def debian_release() -> tuple[str, str]:
    """This host's Debian codename and the mirror apt uses for it."""
    os_release = Path("/etc/os-release").read_text()
    match = re.search(r"^VERSION_CODENAME=(\w+)", os_release, re.M)
    codename = match.group(1) if match else "bookworm"
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for source in sources:
        text = source.read_text(errors="replace") if source.is_file() else ""
        # One-line ("deb URI suite") or deb822 ("URIs: URI") form; the main archive, not
        # security updates or third-party repositories.
        for uri in re.findall(r"^(?:deb\s+(?:\[[^]]*\]\s+)?|URIs:\s*)(\S+)", text, re.M):
            if re.search(r"/debian/?$", uri):
                return codename, uri
    return codename, "http://deb.debian.org/debian"


def ensure_base_image() -> str:
    """A minimal Debian image with python3 and venv, built once and then reused; its name.

    The base trusts the certificates this host trusts (and points pip at them): where
    HTTPS goes through an intercepting proxy, pip in the build would refuse PyPI otherwise.
    """
    check_tools()
    codename, mirror = debian_release()
    image = f"localhost/asgi-supervisor-base:{codename}-{BASE_RECIPE}"
    if subprocess.run([*PODMAN, "image", "exists", image], timeout=60).returncode == 0:
        return image
    with tempfile.TemporaryDirectory(prefix="debootstrap-") as tmp:
        root = Path(tmp) / "root"
        subprocess.run(
            ["debootstrap", "--variant=minbase", "--include=python3,python3-venv,ca-certificates",
             codename, str(root), mirror],
            check=True, capture_output=True, timeout=600,
        )  # fmt: skip
        host_bundle = Path("/etc/ssl/certs/ca-certificates.crt")
        if host_bundle.exists():
            shutil.copyfile(host_bundle, root / "etc/ssl/certs/ca-certificates.crt")
        (root / "etc/pip.conf").write_text("[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n")
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        try:
            subprocess.run(
                [*PODMAN, "import", "-q", "-", image],
                stdin=tar.stdout, check=True, capture_output=True, timeout=300,
            )  # fmt: skip
        finally:
            assert tar.stdout is not None
            tar.stdout.close()
            tar.wait(timeout=60)
    return image


def build_demo_image(base: str) -> str:
    """Build docker/Dockerfile on *base* (``--build-arg BASE``); return the image's name.

    Docker format keeps the HEALTHCHECK (OCI images have none); the host's network lets
    pip reach PyPI. Unchanged layers come from podman's cache.
    """
    podman(
        "build", "--format", "docker", "--network=host", *LIMITS,
        "--build-arg", f"BASE={base}", "-f", str(REPO / "docker/Dockerfile"),
        "-t", DEMO_IMAGE, str(REPO),
        timeout=600,
    )  # fmt: skip
    return DEMO_IMAGE


class Container(Started):
    """One detached container of *image* on the host's network, under a unique name."""

    def __init__(self, image: str, env: dict[str, str]) -> None:
        self.image = image
        self.env = env
        self.name = f"asgi-supervisor-test-{uuid.uuid4().hex[:10]}"
        self._created = False

    def start(self) -> None:
        """Run the container, detached."""
        env_flags = [flag for name, value in self.env.items() for flag in ("-e", f"{name}={value}")]
        self._created = True
        podman("run", "-d", "--name", self.name, "--network=host", *LIMITS, *env_flags, self.image)

    def exec(self, *command: str) -> str:
        """Run *command* inside the container; its stdout."""
        return podman("exec", self.name, *command, timeout=60)

    def inspect(self, template: str) -> str:
        """A field of ``podman inspect`` (a Go template such as ``{{.State.Pid}}``)."""
        return podman("inspect", "--format", template, self.name, timeout=60).strip()

    def logs(self) -> str:
        """Everything the container printed, stdout and stderr."""
        result = subprocess.run(
            [*PODMAN, "logs", self.name], capture_output=True, text=True, timeout=60
        )
        return result.stdout + result.stderr

    def stop(self) -> None:
        """Remove this container (and nothing else), killing it if it still runs."""
        if self._created:
            self._created = False
            podman("rm", "--force", "--time", "0", self.name, timeout=120, check=False)
