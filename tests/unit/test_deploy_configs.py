"""The deployment files in cluster/ and manifests/: Ray's own schema for the launcher configs, and the
structure KubeRay expects for the manifests, with the synth command and job they run."""

import shlex
from pathlib import Path

import pytest
import ray
import yaml

from synth.spec import load_job

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = ["aws.yaml", "gcp.yaml", "onprem.yaml"]


@pytest.mark.parametrize("name", LAUNCHER)
def test_launcher_config_passes_rays_schema(name):
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((ROOT / "cluster" / name).read_text())
    validate_config(prepare_config(config))  # raises on a bad field
    head = " ".join(config["head_start_ray_commands"])
    assert "ray start --head" in head and "--dashboard-host=127.0.0.1" in head  # the dashboard stays private
    assert config["file_mounts"]["/home/ubuntu/synth"] == "."  # the repository, synced to every node
    assert any("pip install -e /home/ubuntu/synth" in c for c in config["setup_commands"])


@pytest.mark.parametrize("name,gpu_key", [("aws.yaml", "InstanceType"), ("gcp.yaml", "guestAccelerators")])
def test_cloud_configs_have_a_cpu_head_and_gpu_workers(name, gpu_key):
    config = yaml.safe_load((ROOT / "cluster" / name).read_text())
    types = config["available_node_types"]
    head, worker = types[config["head_node_type"]], types["gpu_worker"]
    assert worker["max_workers"] >= 1 and worker["min_workers"] == 0
    if gpu_key == "InstanceType":
        assert worker["node_config"]["InstanceType"].startswith(("g", "p")) and head["node_config"][
            "InstanceType"
        ].startswith("m")
    else:
        assert worker["node_config"]["guestAccelerators"][0]["acceleratorCount"] == 1
        assert "guestAccelerators" not in head["node_config"]


def manifest(name):
    return yaml.safe_load((ROOT / "manifests" / name).read_text())


def pod_containers(group):
    return group["template"]["spec"]["containers"]


@pytest.mark.parametrize("name", ["raycluster.yaml", "rayjob.yaml"])
def test_kuberay_manifests(name):
    doc = manifest(name)
    assert (
        doc["apiVersion"] == "ray.io/v1"
        and doc["kind"] == {"raycluster.yaml": "RayCluster", "rayjob.yaml": "RayJob"}[name]
    )
    spec = doc["spec"] if doc["kind"] == "RayCluster" else doc["spec"]["rayClusterSpec"]
    assert spec["rayVersion"] == ray.__version__  # the image's Ray is the one synth is tested with
    head, workers = spec["headGroupSpec"], spec["workerGroupSpecs"]
    images = {c["image"] for g in [head, *workers] for c in pod_containers(g)}
    assert images == {"REGISTRY/synth:0.1.0"}
    assert all("nvidia.com/gpu" not in c["resources"]["limits"] for c in pod_containers(head))
    for group in workers:
        for c in pod_containers(group):
            assert c["resources"]["limits"]["nvidia.com/gpu"] == "1"
    if doc["kind"] == "RayCluster":
        assert head["serviceType"] == "ClusterIP"  # the dashboard is reached by port-forward, not exposed


def test_rayjob_runs_a_valid_synth_job():
    words = shlex.split(manifest("rayjob.yaml")["spec"]["entrypoint"])
    assert words[:2] == ["synth", "run"] and "--address" in words and "--out" in words
    job_path = ROOT / Path(words[2]).relative_to("/home/ray/synth")  # the image holds the repository there
    sets = [words[i + 1] for i, w in enumerate(words) if w == "--set"]
    job = load_job(job_path, sets)
    assert job.train.num_workers == 2 and job.output.url.startswith("s3://")
    assert job.resources.use_gpu is True  # its GPU pods may still be starting when the job does: wait for them


def test_dockerfile_builds_on_the_tested_ray():
    text = (ROOT / "manifests" / "Dockerfile").read_text()
    assert (
        f"FROM rayproject/ray:{ray.__version__}-py311-gpu" in text
        and "pip install --no-cache-dir /home/ray/synth" in text
    )


@pytest.mark.parametrize("name", LAUNCHER)
def test_launcher_config_starts_every_node_with_a_token_from_a_private_file(name):
    text = (ROOT / "cluster" / name).read_text()
    config = yaml.safe_load(text)
    token = "/home/ubuntu/.synth/ray_token"
    assert config["file_mounts"][token] == "~/.synth/ray_token"  # made by `synth cluster token`, mode 600
    assert any("chmod 600 ~/.synth/ray_token" in c for c in config["setup_commands"])
    starts = [c for c in config["head_start_ray_commands"] + config["worker_start_ray_commands"] if "ray start" in c]
    assert len(starts) == 2
    for command in starts:  # the variables are set in the shell that runs `ray start`, before it
        before = command.split("ray start", 1)[0]
        assert "RAY_AUTH_MODE=token" in before and "RAY_AUTH_TOKEN_PATH=$HOME/.synth/ray_token" in before
    assert "RAY_AUTH_TOKEN=" not in text  # never the token itself
    assert "--dashboard-host=0.0.0.0" not in text and "--dashboard-host=127.0.0.1" in text


def test_raycluster_reads_its_token_from_a_secret_on_every_pod_and_stays_in_the_cluster():
    doc = manifest("raycluster.yaml")
    spec = doc["spec"]
    groups = [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
    for group in groups:
        for c in pod_containers(group):
            env = {e["name"]: e for e in c["env"]}
            assert env["RAY_AUTH_MODE"]["value"] == "token"
            assert "value" not in env["RAY_AUTH_TOKEN"]  # never the token itself
            assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"] == {
                "name": "synth-ray-token",
                "key": "auth_token",
            }
    assert spec["headGroupSpec"]["serviceType"] == "ClusterIP"  # no NodePort, no LoadBalancer
    assert "--from-file=auth_token=$HOME/.synth/ray_token" in (ROOT / "manifests" / "raycluster.yaml").read_text()


def test_rayjob_turns_on_token_auth():
    spec = manifest("rayjob.yaml")["spec"]["rayClusterSpec"]
    assert spec["authOptions"] == {"mode": "token"}  # the operator makes the token and hands it to every pod
    assert spec["headGroupSpec"].get("serviceType", "ClusterIP") == "ClusterIP"
    assert "RAY_AUTH_TOKEN" not in (ROOT / "manifests" / "rayjob.yaml").read_text()
