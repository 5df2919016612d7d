"""docker-compose.cluster.yml is a valid Compose file for the scale-out stack, wired like
docker-compose.yml: a 3+3 Valkey Cluster created by a one-shot job, two projectors.

There is no container engine here, so the parts that can run without one run on this
machine: the nodes' configuration on the bundled valkey-server, the one-shot job's script
with valkey-cli (or redis-cli, its twin), the projectors' health check against a cluster.
"""

from __future__ import annotations

import copy
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.test_compose_file import ROOT, schema_errors
from tests.support.valkey_cluster import ValkeyCluster

COMPOSE_FILE = ROOT / "docker-compose.cluster.yml"
NODES = tuple(f"valkey-{number}" for number in range(1, 7))
PROJECTORS = ("projector-1", "projector-2")
APP_SERVICES = ("write-api", *PROJECTORS, "read-api")
CREATE_JOB = "valkey-cluster-create"
CONTRACT_VARIABLES = {"EVENT_STORE_URL", "REDIS_URL", "DATA_DIR", "HOST", "PORT"}
CLUSTER_URL = "redis://valkey-1:6379/0"


def load_compose(path: Path = COMPOSE_FILE) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    return document


def node_config() -> dict[str, str]:
    """The nodes' shared valkey.conf, directive by directive."""
    content = load_compose()["configs"]["valkey-cluster-node"]["content"]
    pairs = (line.split(None, 1) for line in content.splitlines() if line.strip())
    return {name: value.strip() for name, value in pairs}


def node_arguments(service: dict[str, Any]) -> list[str]:
    """What the node's command adds after the shared config file."""
    command: list[str] = service["command"]
    assert command[:2] == ["valkey-server", "/etc/valkey/cluster-node.conf"]
    return command[2:]


def local_node_config(folder: Path) -> str:
    """The nodes' config for this machine: Valkey enters `dir` as it reads the file, and
    /data exists only in the container (each node's own folder is set after it anyway)."""
    content: str = load_compose()["configs"]["valkey-cluster-node"]["content"]
    assert "\ndir /data\n" in content
    return content.replace("\ndir /data\n", f"\ndir {folder}\n")


def create_script() -> str:
    """The one-shot job's shell script, as Compose hands it to sh (`$$` is a `$`)."""
    command: list[str] = load_compose()["services"][CREATE_JOB]["command"]
    assert command[:2] == ["sh", "-c"]
    script = command[2]
    assert not re.search(r"(?<!\$)\$(?!\$)", script.replace("$$", "")), "interpolated $"
    return script.replace("$$", "$")


def test_cluster_compose_file_validates_against_the_compose_specification_schema() -> None:
    assert schema_errors(load_compose()) == []


@pytest.mark.parametrize(
    ("break_it", "expected"),
    [
        (lambda d: d["services"]["valkey-1"].update(cluster_mode=True), "cluster_mode"),
        (
            lambda d: d["services"]["projector-2"].update(
                depends_on={CREATE_JOB: {"condition": "when_created"}}
            ),
            "depends_on",
        ),
        (lambda d: d["configs"]["valkey-cluster-node"].update(content=["yes"]), "content"),
    ],
    ids=["unknown key", "unknown depends_on condition", "config content not a string"],
)
def test_the_schema_check_rejects_a_broken_cluster_compose_file(
    break_it: Any, expected: str
) -> None:
    broken = copy.deepcopy(load_compose())
    break_it(broken)
    assert any(expected in error for error in schema_errors(broken))


def test_there_are_six_valkey_nodes_each_with_its_own_volume_and_a_healthcheck() -> None:
    document = load_compose()
    services = document["services"]
    nodes = [name for name, service in services.items() if "cluster-node.conf" in str(service)]
    assert sorted(nodes) == list(NODES)
    volumes = set()
    for name in NODES:
        node = services[name]
        assert node["image"].startswith("valkey/valkey:"), name
        assert node["configs"] == [
            {"source": "valkey-cluster-node", "target": "/etc/valkey/cluster-node.conf"}
        ], name
        assert node["healthcheck"]["test"] == ["CMD", "valkey-cli", "ping"], name
        assert node["restart"] == "unless-stopped", name
        (volume,) = node["volumes"]
        assert volume == f"{name}-data:/data", name
        volumes.add(volume.split(":")[0])
    assert len(volumes) == len(NODES)
    assert set(document["volumes"]) >= volumes | {"postgres-data"}


def test_every_node_runs_in_cluster_mode_with_an_append_only_file_and_never_evicts() -> None:
    config = node_config()
    assert config["cluster-enabled"] == "yes"
    assert config["appendonly"] == "yes"
    assert config["appendfsync"] == "everysec"
    assert config["maxmemory-policy"] == "noeviction"
    assert config["dir"] == "/data"  # the node's volume: nodes.conf and AOF survive
    assert config["cluster-config-file"] == "nodes.conf"
    assert config["port"] == "6379"
    for name in NODES:
        arguments = node_arguments(load_compose()["services"][name])
        # Only its own name is set per node; nothing overrides the shared settings.
        assert arguments == ["--cluster-announce-hostname", name], name


@pytest.mark.redis
def test_the_nodes_configuration_is_one_the_bundled_valkey_server_runs_a_cluster_with(
    tmp_path: Path,
) -> None:
    services = load_compose()["services"]
    content = local_node_config(tmp_path)
    arguments = [node_arguments(services[name]) for name in NODES]
    with ValkeyCluster(tmp_path, config=content, node_arguments=arguments) as cluster:
        for node, name in zip(cluster.nodes, NODES, strict=True):
            with node.client() as client:
                settings = client.config_get("*")
            assert settings["cluster-enabled"] == "yes"
            assert settings["appendonly"] == "yes"
            assert settings["maxmemory-policy"] == "noeviction"
            assert settings["cluster-node-timeout"] == node_config()["cluster-node-timeout"]
            assert settings["cluster-announce-hostname"] == name
        assert len(cluster.masters()) == 3
        assert len(cluster.replicas()) == 3


def test_the_create_job_joins_all_six_nodes_with_one_replica_each_once_they_are_healthy() -> None:
    job = load_compose()["services"][CREATE_JOB]
    assert job["image"] == load_compose()["services"]["valkey-1"]["image"]
    assert job["restart"] == "no"  # a one-shot: the roles wait for it to have succeeded
    assert job["depends_on"] == {name: {"condition": "service_healthy"} for name in NODES}
    script = create_script()
    create = next(line for line in script.splitlines() if "--cluster create" in line)
    nodes = re.search(r'nodes="([^"]+)"', script)
    assert nodes is not None
    assert nodes.group(1).split() == [f"{name}:6379" for name in NODES]
    assert shlex.split(create)[-3:] == ["--cluster-replicas", "1", "--cluster-yes"]
    assert "cluster_state:ok" in script


def test_the_app_roles_wait_for_the_cluster_to_be_created_and_postgres_to_be_healthy() -> None:
    services = load_compose()["services"]
    for name in ("read-api", *PROJECTORS):
        assert services[name]["depends_on"] == {
            "postgres": {"condition": "service_healthy"},
            CREATE_JOB: {"condition": "service_completed_successfully"},
        }, name
    # As in docker-compose.yml, the write side needs the event store only.
    assert services["write-api"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}


def test_two_projectors_and_every_role_run_from_the_main_files_image_and_settings() -> None:
    services = load_compose()["services"]
    main = load_compose(ROOT / "docker-compose.yml")["services"]
    projecting = [
        n for n, service in services.items() if service.get("command") == ["customers", "project"]
    ]
    assert projecting == list(PROJECTORS)
    for name in APP_SERVICES:
        role = "projector" if name in PROJECTORS else name
        for setting in ("build", "image", "restart", "stop_grace_period", "command"):
            assert services[name][setting] == main[role][setting], (name, setting)
        if role != "projector":
            assert services[name]["healthcheck"] == main[role]["healthcheck"], name
            assert services[name].get("ports") == main[role].get("ports"), name
    for name, service in services.items():
        if name != CREATE_JOB:
            assert service["restart"] in ("always", "unless-stopped", "on-failure"), name
    assert services["postgres"] == main["postgres"]


def test_roles_are_configured_only_through_the_contract_variables_with_one_node_url() -> None:
    services = load_compose()["services"]
    main = load_compose(ROOT / "docker-compose.yml")["services"]
    for name in APP_SERVICES:
        environment = services[name]["environment"]
        assert set(environment) <= CONTRACT_VARIABLES, name
        assert "env_file" not in services[name], name
        role = "projector" if name in PROJECTORS else name
        expected = {**main[role]["environment"]}
        if "REDIS_URL" in expected:
            expected["REDIS_URL"] = CLUSTER_URL
        assert environment == expected, name


@pytest.mark.redis
def test_the_projector_healthcheck_finds_this_hosts_heartbeat_in_a_cluster(
    valkey_cluster: ValkeyCluster,
) -> None:
    test = load_compose()["services"]["projector-1"]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    environment = {**os.environ, "REDIS_URL": valkey_cluster.url}

    def healthy() -> bool:
        run = subprocess.run([sys.executable, "-c", test[3]], env=environment, timeout=30)
        return run.returncode == 0

    assert not healthy()  # no heartbeat yet
    client = valkey_cluster.client()
    client.hset("{customers}:projector", mapping={"host": "another-container", "pid": "1"})
    assert not healthy()
    client.hset("{customers}:projector", mapping={"host": socket.gethostname(), "pid": "1"})
    assert healthy()


def cluster_cli() -> str:
    path = shutil.which("valkey-cli") or shutil.which("redis-cli")
    if path is None:
        pytest.skip("neither valkey-cli nor redis-cli is installed")
    return path


@pytest.mark.slow
@pytest.mark.redis
def test_the_create_job_forms_a_healthy_three_plus_three_cluster_and_only_waits_when_rerun(
    tmp_path: Path,
) -> None:
    cli = cluster_cli()
    services = load_compose()["services"]
    content = local_node_config(tmp_path)
    arguments = [node_arguments(services[name]) for name in NODES]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "valkey-cli").symlink_to(cli)
    environment = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    cluster = ValkeyCluster(tmp_path / "nodes", config=content, node_arguments=arguments)
    try:
        cluster.start(form=False)  # the job forms it
        script = create_script()
        for name, node in zip(NODES, cluster.nodes, strict=True):
            # The container names resolve to the local nodes.
            script = script.replace(f"{name}:6379", f"127.0.0.1:{node.port}")
            script = script.replace(f"-h {name} -p 6379", f"-h 127.0.0.1 -p {node.port}")
        assert not re.search(r"valkey-\d", script), script
        first = subprocess.run(
            ["sh", "-c", script], env=environment, capture_output=True, text=True, timeout=180
        )
        assert first.returncode == 0, first.stdout + first.stderr
        cluster.wait_until_healthy()
        masters = cluster.masters()
        assert len(masters) == 3
        assert all(len(cluster.replicas_of(master)) == 1 for master in masters)

        again = subprocess.run(
            ["sh", "-c", script], env=environment, capture_output=True, text=True, timeout=180
        )
        assert again.returncode == 0, again.stdout + again.stderr
        assert "the cluster exists already" in again.stdout
    finally:
        cluster.close()
