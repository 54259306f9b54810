"""The multi-instance deployment files agree with the code they deploy.

No Docker engine runs here, so these checks read docker-compose.yml, the Dockerfile and
the nginx config and hold them against the settings model, the command line and the
package list: a renamed setting, a new package or a new service breaks this test.
"""

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from relaydesk.keys import PREVIOUS
from relaydesk.settings import ENV_PREFIX, Settings
from tools.cli import SERVICE_MODULES

ROOT = Path(__file__).resolve().parents[2]
SECRET_SETTINGS = set(PREVIOUS)  # jwt_secret, visitor_secret, secrets_key
PREVIOUS_KEY_SETTINGS = set(PREVIOUS.values())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def relaydesk_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: spec
        for name, spec in compose["services"].items()
        if spec.get("image", "").startswith("relaydesk")
    }


def test_every_service_command_runs_a_real_relaydesk_service(compose: dict[str, Any]) -> None:
    commands = {spec["command"][0] for spec in relaydesk_services(compose).values()}
    assert commands == set(SERVICE_MODULES), (
        "compose must run each service the CLI knows, and only those"
    )
    gateways = [
        name for name, spec in relaydesk_services(compose).items() if spec["command"] == ["gateway"]
    ]
    assert len(gateways) >= 2, "the deployment shows horizontal gateways"


def test_environment_names_are_settings_the_code_reads(compose: dict[str, Any]) -> None:
    fields = set(Settings.model_fields)
    for name, spec in relaydesk_services(compose).items():
        for variable, value in spec["environment"].items():
            if variable == "MONGO_URL":
                continue
            assert variable.startswith(ENV_PREFIX), (
                f"{name}: {variable} lacks the {ENV_PREFIX} prefix"
            )
            field = variable.removeprefix(ENV_PREFIX).lower()
            assert field in fields, f"{name}: {variable} is not a setting"
            if field in SECRET_SETTINGS:
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", str(value)), (
                    f"{variable} must be required, never defaulted"
                )
            if field in PREVIOUS_KEY_SETTINGS:
                assert str(value) == f"${{{variable}:-}}", (
                    f"{variable} comes from the environment or is empty, never a literal"
                )


def test_mounted_files_exist_and_mongo_is_a_replica_set(compose: dict[str, Any]) -> None:
    for spec in compose["services"].values():
        for volume in spec.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{source} is mounted but missing"
    init = (ROOT / "docker/mongo-init-replica-set.js").read_text()
    members = re.findall(r'host: "([\w-]+):27017"', init)
    assert len(members) == 3 and all(member in compose["services"] for member in members)
    assert "replicaSet=rs0" in compose["services"]["gateway-1"]["environment"]["MONGO_URL"]


def test_dockerfile_copies_every_installed_package() -> None:
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"
    ]["find"]["include"]
    copied = set(
        re.findall(r"^COPY (\w+) \./\1$", (ROOT / "docker/Dockerfile").read_text(), re.MULTILINE)
    )
    assert {p.rstrip("*") for p in packages} == copied


def test_nginx_routes_to_the_compose_gateways_and_upgrades_websockets(
    compose: dict[str, Any],
) -> None:
    nginx = (ROOT / "docker/nginx.conf").read_text()
    upstream = re.search(r"upstream gateways \{(.*?)\}", nginx, re.S)
    assert upstream is not None
    targets = re.findall(r"server ([\w-]+):(\d+)", upstream.group(1))
    gateways = {
        name for name, spec in relaydesk_services(compose).items() if spec["command"] == ["gateway"]
    }
    assert {name for name, _ in targets} == gateways
    assert {int(port) for _, port in targets} == {Settings.model_fields["gateway_port"].default}
    assert "proxy_set_header Upgrade $http_upgrade" in nginx
    connectors_port = Settings.model_fields["connectors_port"].default
    assert f"server connectors:{connectors_port}" in nginx
