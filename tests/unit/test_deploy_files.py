"""The deployment files say what works: Dockerfile, compose.yaml, requirements.lock, deploy/k8s/.

No Docker engine or cluster runs here, so these read the files and check what can be checked
without one: the commands are deskmate's, the variables are its settings, the ports and probes
meet, and every Kubernetes manifest validates against the Kubernetes schemas (offline).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from pydantic import AliasChoices

from bot.settings import Settings
from deskmate.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.30.0"


def _setting_names() -> set[str]:
    names = set()
    for field, info in Settings.model_fields.items():
        alias = info.validation_alias
        names.add(str(alias.choices[0]) if isinstance(alias, AliasChoices) else field.upper())
    return names


def _subcommands() -> set[str]:
    return set(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]


def _assert_deskmate_command(command: list[str]) -> None:
    """A `deskmate <subcommand> …` the CLI accepts."""
    assert command[0] == "deskmate", command
    build_parser().parse_args(command[1:])  # exits (SystemExit) on anything it does not accept


def _option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


# --- requirements.lock ---------------------------------------------------------------------------


def _lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text("utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"requirements.lock: {line!r} is not pinned with =="
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def test_every_runtime_dependency_is_pinned_in_the_lock_within_its_range() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]
    pins = _lock()
    for raw in project["dependencies"]:
        requirement = Requirement(raw)
        name = re.sub(r"[-_.]+", "-", requirement.name).lower()
        assert name in pins, f"{name} is a dependency but not in requirements.lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (name, pins[name])


def test_the_lock_holds_no_development_tools() -> None:
    assert not {"pytest", "ruff", "mypy", "hypothesis", "playwright"} & set(_lock())


# --- Dockerfile ----------------------------------------------------------------------------------


def _dockerfile() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text("utf-8").replace("\\\n", " ")
    instructions = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, rest = line.strip().partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def test_the_image_installs_the_locked_dependencies_before_copying_the_code() -> None:
    steps = _dockerfile()
    copies = [i for i, (k, _) in enumerate(steps) if k == "COPY"]
    lock_copy = next(i for i in copies if steps[i][1].startswith("requirements.lock"))
    lock_install = next(
        i for i, (k, v) in enumerate(steps) if k == "RUN" and "-r requirements.lock" in v
    )
    code_copies = [i for i in copies if i != lock_copy]
    # A change of code invalidates only the layers after the dependencies.
    assert lock_copy < lock_install < min(code_copies)
    assert any(k == "RUN" and "--no-deps ." in v for k, v in steps[min(code_copies) :])


def test_the_image_copies_every_package_deskmate_is_built_from() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = {v.split()[0] for k, v in _dockerfile() if k == "COPY"}
    assert packages <= copied
    assert all((ROOT / path).exists() for path in copied)


def test_the_image_runs_as_a_user_with_a_healthcheck_on_the_served_port() -> None:
    steps = _dockerfile()
    user = [v for k, v in steps if k == "USER"]
    assert user and user[-1] not in ("root", "0")
    command = yaml.safe_load([v for k, v in steps if k == "CMD"][-1])  # a JSON array
    _assert_deskmate_command(command)
    port = _option(command, "--port")
    assert [v for k, v in steps if k == "EXPOSE"] == [port]
    healthcheck = [v for k, v in steps if k == "HEALTHCHECK"]
    assert healthcheck and f"127.0.0.1:{port}/healthz" in healthcheck[0]


def test_the_build_context_leaves_out_secrets_and_local_state() -> None:
    ignored = (ROOT / ".dockerignore").read_text("utf-8").splitlines()
    assert {".env", ".venv", ".deskmate", ".git"} <= set(ignored)


# --- compose.yaml --------------------------------------------------------------------------------


def _compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "compose.yaml").read_text("utf-8"))["services"])


def test_compose_runs_deskmate_commands_with_real_settings() -> None:
    settings, services = _setting_names(), _compose()
    for name, service in services.items():
        if "command" in service:
            _assert_deskmate_command(service["command"])
        unknown = set(service.get("environment", {})) - settings
        if name != "db":
            assert unknown == set(), f"{name}: {unknown} are not deskmate settings"


def test_compose_migrates_once_before_serving_and_seeds_the_demo_when_asked() -> None:
    services = _compose()
    assert services["db"]["image"] == "pgvector/pgvector:pg17"
    assert services["migrate"]["command"] == ["deskmate", "migrate"]
    assert services["migrate"]["depends_on"]["db"]["condition"] == "service_healthy"
    for name in ("deskmate", "demo"):
        assert services[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )
    assert services["demo"]["profiles"] == ["demo"]
    assert services["demo"]["command"][:2] == ["deskmate", "demo"]
    assert "profiles" not in services["deskmate"]


def test_compose_opens_a_web_chat_that_answers() -> None:
    """In the container deskmate listens on 0.0.0.0, where the web chat is off without a token
    (handlers/webchat access_mode): compose requires one and publishes on loopback only."""
    from handlers.webchat import Access, access_mode

    deskmate = _compose()["deskmate"]
    command = deskmate["command"]
    host, port = _option(command, "--host"), _option(command, "--port")
    token = deskmate["environment"]["WEBCHAT_TOKEN"]
    assert token.startswith("${WEBCHAT_TOKEN:?")  # compose refuses to start without it
    with_token = Settings(_env_file=None, webchat_token="t")  # type: ignore[call-arg]
    assert access_mode(host, with_token) is Access.TOKEN
    assert deskmate["ports"] == [f"127.0.0.1:{port}:{port}"]


# --- Kubernetes ----------------------------------------------------------------------------------


def _manifests() -> list[tuple[str, dict[str, Any]]]:
    documents = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            documents += [(path.name, d) for d in yaml.safe_load_all(path.read_text("utf-8")) if d]
    return documents


def _kind(kind: str) -> dict[str, Any]:
    (found,) = [d for _, d in _manifests() if d["kind"] == kind]
    return found


@pytest.mark.parametrize(("name", "document"), _manifests(), ids=lambda v: str(v)[:40])
def test_every_manifest_validates_against_the_kubernetes_schema(
    name: str, document: dict[str, Any]
) -> None:
    import kubernetes_validate

    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_kustomization_applies_every_manifest_but_the_secret_example() -> None:
    listed = yaml.safe_load((K8S / "kustomization.yaml").read_text("utf-8"))["resources"]
    present = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    assert sorted(listed) == sorted(present)


def _pod(kind: str) -> dict[str, Any]:
    return dict(_kind(kind)["spec"]["template"])


def test_the_deployment_probes_readyz_and_healthz_on_the_served_port() -> None:
    pod = _pod("Deployment")
    (container,) = pod["spec"]["containers"]
    _assert_deskmate_command(container["command"])
    assert container["command"][1] == "serve"
    (port,) = container["ports"]
    assert str(port["containerPort"]) == _option(container["command"], "--port")
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["name"]}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"]}
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True


def test_the_migration_job_runs_deskmate_migrate_with_the_same_settings() -> None:
    (job,) = _pod("Job")["spec"]["containers"]
    (server,) = _pod("Deployment")["spec"]["containers"]
    assert job["command"] == ["deskmate", "migrate"]
    assert job["envFrom"] == server["envFrom"]
    assert job["image"] == server["image"]


def test_settings_come_from_a_secret_and_a_config_map_of_real_settings() -> None:
    settings = _setting_names()
    (server,) = _pod("Deployment")["spec"]["containers"]
    sources = {next(iter(s)): next(iter(s.values()))["name"] for s in server["envFrom"]}
    assert sources == {"configMapRef": "deskmate", "secretRef": "deskmate"}
    assert set(_kind("ConfigMap")["data"]) <= settings
    secret = _kind("Secret")
    assert set(secret["stringData"]) <= settings
    assert "DATABASE_URL" in secret["stringData"]


def test_service_budget_and_autoscaler_all_point_at_the_deployment() -> None:
    deployment = _kind("Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = _kind("Service")
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert _kind("PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() <= labels.items()
    target = _kind("HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
