"""The multi-instance deployment files agree with the code they deploy.

No Docker engine runs here, so these checks read docker-compose.yml, the Dockerfile and
the nginx config and hold them against the settings model, the command line and the
package list: a renamed setting, a new package or a new service breaks this test.
"""

import json
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

import relaydesk.metrics  # noqa: F401 - registers every relaydesk_* metric
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


# --- the production shape (issue 15): cluster, TLS, healthchecks, monitoring --------------


def long_running(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every container but the one-shot initialisers (restart "no")."""
    return {n: s for n, s in compose["services"].items() if s.get("restart") != "no"}


def health_port(service: str) -> int:
    """RELAYDESK_HEALTH_PORT_BASE + the service's place in the order the health server uses
    (relaydesk.health.SERVICE_ORDER: the command line's service order)."""
    return Settings.model_fields["health_port_base"].default + list(SERVICE_MODULES).index(service)


def test_rabbitmq_is_a_three_node_cluster_sharing_one_cookie_with_quorum_by_default(
    compose: dict[str, Any],
) -> None:
    nodes = {
        name: spec
        for name, spec in compose["services"].items()
        if spec.get("image", "").startswith("rabbitmq:")
    }
    assert len(nodes) == 3
    cookies = {spec["environment"]["RABBITMQ_ERLANG_COOKIE"] for spec in nodes.values()}
    assert len(cookies) == 1 and re.fullmatch(r"\$\{RABBITMQ_ERLANG_COOKIE:\?[^}]+\}", *cookies)
    conf = (ROOT / "docker/rabbitmq.conf").read_text()
    listed = set(re.findall(r"classic_config\.nodes\.\d+ = rabbit@([\w-]+)", conf))
    assert listed == {spec["hostname"] for spec in nodes.values()} == set(nodes)
    assert re.search(r"^default_queue_type = quorum$", conf, re.M)
    for spec in nodes.values():
        assert "./docker/rabbitmq.conf:/etc/rabbitmq/rabbitmq.conf:ro" in spec["volumes"]
        assert "await_online_nodes 3" in " ".join(spec["healthcheck"]["test"])
    # services reach the cluster through the balancer, and start once all three nodes are up
    balancer = (ROOT / "docker/rabbitmq-balancer.conf").read_text()
    for port in (5672, 5552):
        upstream = {n for n, p in re.findall(r"server ([\w-]+):(\d+)", balancer) if int(p) == port}
        assert upstream == set(nodes), port
    for name, spec in relaydesk_services(compose).items():
        assert "@rabbitmq:5672/" in spec["environment"]["RELAYDESK_AMQP_URL"], name
        assert set(nodes) | {"rabbitmq"} <= set(spec["depends_on"]), name


def test_every_long_running_container_has_a_healthcheck_relaydesk_ones_ask_readyz(
    compose: dict[str, Any],
) -> None:
    for name, spec in long_running(compose).items():
        assert spec.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    for name, spec in relaydesk_services(compose).items():
        check = " ".join(spec["healthcheck"]["test"])
        port = health_port(spec["command"][0])
        assert f"http://127.0.0.1:{port}/readyz" in check, (name, check)
    assert "RELAYDESK_HEALTH_HOST=0.0.0.0" in (ROOT / "docker/Dockerfile").read_text(), (
        "health servers must be reachable by the healthcheck's and Prometheus's connections"
    )


def test_nginx_serves_https_with_the_certificate_tls_init_makes_and_is_a_trusted_proxy(
    compose: dict[str, Any],
) -> None:
    nginx_conf = (ROOT / "docker/nginx.conf").read_text()
    assert re.search(r"listen 443 ssl;", nginx_conf)
    assert "ssl_certificate /etc/nginx/tls/fullchain.pem;" in nginx_conf
    assert "ssl_certificate_key /etc/nginx/tls/privkey.pem;" in nginx_conf
    assert re.search(r"location / \{\s*return 308 https://", nginx_conf), "plain http redirects"
    nginx, init = compose["services"]["nginx"], compose["services"]["tls-init"]
    assert "${TLS_DIR:-tls}:/etc/nginx/tls:ro" in nginx["volumes"]
    assert "${TLS_DIR:-tls}:/tls" in init["volumes"]
    made = " ".join(init["command"])
    assert "/tls/fullchain.pem" in made and "/tls/privkey.pem" in made
    assert nginx["depends_on"]["tls-init"] == {"condition": "service_completed_successfully"}
    assert any(str(port).endswith(":443") for port in nginx["ports"])
    address = nginx["networks"]["default"]["ipv4_address"]
    for name, spec in relaydesk_services(compose).items():
        if spec["command"] == ["gateway"]:
            assert spec["environment"]["RELAYDESK_TRUSTED_PROXIES"] == address, name
    assert nginx_conf.count("proxy_set_header X-Forwarded-Proto $scheme;") >= 3


def test_prometheus_scrapes_every_relaydesk_process_and_grafana_shows_the_dashboard(
    compose: dict[str, Any],
) -> None:
    assert {"prometheus", "grafana"} <= set(compose["services"])
    scrape = yaml.safe_load((ROOT / "docker/prometheus.yml").read_text())
    targets = {
        target
        for job in scrape["scrape_configs"]
        for c in job["static_configs"]
        for target in c["targets"]
    }
    for name, spec in relaydesk_services(compose).items():
        assert f"{name}:{health_port(spec['command'][0])}" in targets, name
    grafana = compose["services"]["grafana"]
    assert re.fullmatch(
        r"\$\{GRAFANA_ADMIN_PASSWORD:\?[^}]+\}",
        grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"],
    )
    dashboards = list((ROOT / "docker/grafana/dashboards").glob("*.json"))
    assert dashboards and (ROOT / "docker/grafana/provisioning/dashboards/relaydesk.yml").exists()


def test_the_dashboard_and_the_docs_name_only_and_all_real_metrics() -> None:
    defined = {m.name for m in REGISTRY.collect() if m.name.startswith("relaydesk_")}
    counters = {m.name for m in REGISTRY.collect() if m.type == "counter"}
    exposed = {f"{name}_total" if name in counters else name for name in defined}
    dashboard = (ROOT / "docker/grafana/dashboards/relaydesk.json").read_text()
    json.loads(dashboard)
    used = {re.sub(r"_(bucket|sum|count)$", "", n) for n in re.findall(r"relaydesk_\w+", dashboard)}
    assert used <= exposed, f"the dashboard asks for metrics nobody exports: {used - exposed}"
    assert exposed <= used, f"metrics without a panel: {exposed - used}"
    docs = (ROOT / "docs/observability.md").read_text()
    assert {name for name in exposed if f"`{name}`" not in docs} == set(), "undocumented metrics"


@pytest.mark.skipif(
    subprocess.run(["docker", "compose", "version"], capture_output=True, check=False).returncode
    != 0
    if shutil.which("docker")
    else True,
    reason="the docker compose client is not installed",
)
def test_docker_compose_accepts_the_file() -> None:
    env = {
        **os.environ,
        **{
            var: "x" * 40
            for var in re.findall(r"\$\{(\w+):\?", (ROOT / "docker-compose.yml").read_text())
        },
    }
    checked = subprocess.run(
        ["docker", "compose", "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
