"""The deployment files, checked statically (tests/servers/test_demo_image.py runs the image).

Each test reads the real file and fails on the concrete value it checks: a Dockerfile
finding, an invalid manifest, or settings that disagree between the app and its deployment.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from app.settings import Settings
from asgi_supervisor import Config

REPO = Path(__file__).resolve().parents[2]


def tool(name: str) -> str:
    """The path of *name*, from the venv first; missing tools fail in CI and skip elsewhere."""
    found = shutil.which(
        name, path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    )
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed; `make test` installs it")
        pytest.skip(f"{name} is not installed")
    return found


def load_all(path: Path) -> list[dict[str, Any]]:
    """Every YAML document in *path*."""
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def run_tool(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the tool *name* with *args*, bounded in time, capturing its output."""
    return subprocess.run(
        [tool(name), *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_dockerfile_passes_hadolint() -> None:
    """hadolint reports nothing for the Dockerfile."""
    result = run_tool("hadolint", "--no-color", str(REPO / "docker/Dockerfile"))
    assert (result.returncode, result.stdout) == (0, "")


def test_dockerfile_runs_as_non_root_with_exec_form_and_healthcheck() -> None:
    """Both stages on one BASE (python:3.11-slim unless overridden), a non-root user,
    STOPSIGNAL SIGTERM, an exec-form CMD, and a CLI health check on uvicorn's own port."""
    lines = [line.strip() for line in (REPO / "docker/Dockerfile").read_text().splitlines()]
    assert "ARG BASE=python:3.11-slim" in lines
    assert [line for line in lines if line.startswith("FROM ")] == [
        "FROM ${BASE} AS build",
        "FROM ${BASE}",
    ]
    # Debian's python has no `python` name.
    assert any(line.startswith("RUN python3 -m venv /venv") for line in lines)
    user = next(line for line in lines if line.startswith("USER "))
    assert user.split()[1].split(":")[0] not in ("root", "0")
    assert "STOPSIGNAL SIGTERM" in lines
    cmd = [line for line in lines if line.startswith("CMD ")][-1]
    assert cmd.startswith('CMD ["uvicorn", "app.main:app"')
    assert "--port" not in cmd  # uvicorn takes UVICORN_PORT, which the health check reads
    env = dockerfile_env(lines)
    assert (env["UVICORN_HOST"], env["UVICORN_PORT"]) == ("0.0.0.0", "8000")
    assert Settings(database_url=env["APP_DATABASE_URL"]).database_url.startswith(
        "sqlite:////data/"
    )
    healthcheck = next(line for line in lines if line.startswith('CMD ["/bin/sh", "-c"'))
    assert "exec asgi-supervisor health http://127.0.0.1:${UVICORN_PORT}" in healthcheck


def dockerfile_env(lines: list[str]) -> dict[str, str]:
    """The NAME=value pairs of the Dockerfile's ENV instructions (continuations joined)."""
    text = " ".join(lines).replace("\\ ", " ")
    pairs: dict[str, str] = {}
    for instruction in text.split(" ENV ")[1:]:
        for word in instruction.split():
            if "=" not in word:
                break
            name, _, value = word.partition("=")
            pairs[name] = value.strip('"')
    return pairs


def test_kubernetes_manifest_is_valid() -> None:
    """kubernetes-validate accepts every resource (schemas ship with the package)."""
    result = run_tool("kubernetes-validate", "--strict", str(REPO / "docker/kubernetes.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed") == len(load_all(REPO / "docker/kubernetes.yaml")) == 5


def test_kubernetes_replicas_share_a_postgres_statefulset() -> None:
    """The replicas' queue is the manifest's PostgreSQL (a StatefulSet with a claim per pod,
    behind its Service, password from its Secret), never a pod-local emptyDir."""
    text = (REPO / "docker/kubernetes.yaml").read_text()
    assert "emptyDir" not in text
    docs = {
        (d["kind"], d["metadata"]["name"]): d for d in load_all(REPO / "docker/kubernetes.yaml")
    }
    container = docs["Deployment", "asgi-supervisor-demo"]["spec"]["template"]["spec"][
        "containers"
    ][0]
    env = {item["name"]: item for item in container["env"]}
    url = urlsplit(Settings(database_url=env["APP_DATABASE_URL"]["value"]).database_url)
    assert url.scheme == "postgresql"
    assert url.password is None  # the secret travels in PGPASSWORD
    service = docs["Service", url.hostname]
    statefulset = docs["StatefulSet", url.hostname]
    assert service["spec"]["ports"][0]["port"] == url.port == 5432
    pod = statefulset["spec"]["template"]
    assert service["spec"]["selector"] == pod["metadata"]["labels"]
    assert statefulset["spec"]["serviceName"] == url.hostname
    postgres = pod["spec"]["containers"][0]
    pg_env = {item["name"]: item for item in postgres["env"]}
    assert (pg_env["POSTGRES_USER"]["value"], pg_env["POSTGRES_DB"]["value"]) == (
        url.username,
        url.path.lstrip("/"),
    )
    secret_ref = env["PGPASSWORD"]["valueFrom"]["secretKeyRef"]
    assert pg_env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"] == secret_ref
    assert secret_ref["key"] in docs["Secret", secret_ref["name"]]["stringData"]
    claims = [claim["metadata"]["name"] for claim in statefulset["spec"]["volumeClaimTemplates"]]
    mount = postgres["volumeMounts"][0]
    assert mount["name"] in claims
    assert pg_env["PGDATA"]["value"].startswith(mount["mountPath"] + "/")


def test_kubernetes_probes_prestop_and_grace_period_agree_with_the_settings() -> None:
    """Probes hit the middleware's paths under the pod's prefix, preStop drains, and the
    pod's grace period covers the supervisor's deadline plus a margin."""
    deployment = next(
        d for d in load_all(REPO / "docker/kubernetes.yaml") if d["kind"] == "Deployment"
    )
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {item["name"]: item["value"] for item in container["env"] if "value" in item}
    config = Config.from_env(env)
    probes = {
        name: container[name]["httpGet"]["path"]
        for name in ("startupProbe", "readinessProbe", "livenessProbe")
    }
    assert probes == {
        "startupProbe": f"{config.path_prefix}/health/startup",
        "readinessProbe": f"{config.path_prefix}/health/ready",
        "livenessProbe": f"{config.path_prefix}/health/live",
    }
    assert container["lifecycle"]["preStop"]["exec"]["command"][:3] == [
        "asgi-supervisor",
        "drain",
        "http://127.0.0.1:8000",
    ]
    assert config.shutdown_delay is not None
    assert config.shutdown_delay >= 2 * container["readinessProbe"]["periodSeconds"]
    assert pod["terminationGracePeriodSeconds"] >= config.grace_period + 5
    assert container["ports"][0]["containerPort"] == 8000


def test_compose_replicas_and_balancer_agree() -> None:
    """Two replicas with a stop grace above the supervisor's, one PostgreSQL queue they wait
    for, and an HAProxy backend that checks readiness on exactly those replicas."""
    compose = yaml.safe_load((REPO / "compose.yaml").read_text())
    services = compose["services"]
    replicas = {name: svc for name, svc in services.items() if name.startswith("demo-")}
    assert sorted(replicas) == ["demo-1", "demo-2"]
    postgres = services["postgres"]
    for service in replicas.values():
        environment = service["environment"]
        config = Config.from_env(environment)
        grace = float(service["stop_grace_period"].rstrip("s"))
        assert grace > config.grace_period
        assert service["stop_signal"] == "SIGTERM"
        assert "8000" in service["expose"]
        assert "volumes" not in service  # no queue file: the queue is PostgreSQL's
        url = urlsplit(Settings(database_url=environment["APP_DATABASE_URL"]).database_url)
        assert (url.scheme, url.hostname, url.port) == ("postgresql", "postgres", 5432)
        assert url.username == postgres["environment"]["POSTGRES_USER"]
        assert url.path.lstrip("/") == postgres["environment"]["POSTGRES_DB"]
        assert environment["PGPASSWORD"] == postgres["environment"]["POSTGRES_PASSWORD"]
        assert service["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert postgres["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    volume = postgres["volumes"][0].split(":")
    assert volume == ["queue", "/var/lib/postgresql/data"]
    assert "queue" in compose["volumes"]
    haproxy = (REPO / "docker/haproxy.cfg").read_text()
    servers = [
        line.split()[1:3] for line in haproxy.splitlines() if line.strip().startswith("server ")
    ]
    assert servers == [["demo-1", "demo-1:8000"], ["demo-2", "demo-2:8000"]]
    assert f"option httpchk GET {config.path_prefix}/health/ready" in haproxy
    assert "inter 200ms fall 1 rise 1" in haproxy
    assert "retries 0" in haproxy
    mounted = services["haproxy"]["volumes"][0].split(":")
    assert mounted[0] == "./docker/haproxy.cfg"
    assert services["haproxy"]["ports"] == ["8080:8080"]
    assert "bind :8080" in haproxy


def test_haproxy_config_is_valid() -> None:
    """`haproxy -c` accepts the balancer's configuration as shipped."""
    # -V: HAProxy 3 says nothing of a valid file without it (2.6, the image's, says it anyway).
    result = run_tool("haproxy", "-c", "-V", "-f", str(REPO / "docker/haproxy.cfg"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Configuration file is valid" in result.stdout
