"""deploy/ checked by the real tools: systemd-analyze, kubectl kustomize, kubernetes-validate,
checkov and hadolint (issue 4, items 6-8).

The tools live in .venv-tools (scripts/install-deploy-tools.sh; systemd-analyze comes from
Debian's systemd package). Nothing here skips: a missing tool is a failure that says how to
install it.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import shutil
import subprocess
import time
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from syncd.config import parse_config, parse_duration

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
SYSTEMD = DEPLOY / "systemd"
K8S = DEPLOY / "kubernetes"
DOCKERFILE = DEPLOY / "container" / "Dockerfile"
TOOLS = ROOT / ".venv-tools" / "bin"
INSTALL = "scripts/install-deploy-tools.sh"

K8S_VERSION = "1.30.0"
MAX_EXPOSURE = 2.0
UNITS = ["syncd.service", "syncd-sync.service"]
# kustomization directory -> the workload kinds it must render (and no other workload)
VARIANTS = {"default": ("", {"CronJob"}), "daemon": ("daemon", {"Deployment"}), "backfill": ("backfill", {"Job"})}
WORKLOAD_KINDS = {"CronJob", "Deployment", "Job", "StatefulSet", "DaemonSet", "Pod"}
PLACEHOLDER_DIGEST = "sha256:" + "0" * 64
METRICS_PORT = 9469


# --- running the tools ----------------------------------------------------------------------


def tool(name: str) -> str:
    """The path of a validator from .venv-tools/bin; fails (never skips) when it is missing."""
    path = TOOLS / name
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"{path} is missing: run `bash {INSTALL}` (it creates .venv-tools)", pytrace=False)
    return str(path)


def systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        pytest.fail(f"systemd-analyze is not on PATH: run `bash {INSTALL}` (installs Debian's systemd)", pytrace=False)
    return path


def run(args: list[str], *, stdin: str | None = None, cwd: Path = ROOT, env: dict[str, str] | None = None,
        timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, input=stdin, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def explain(result: subprocess.CompletedProcess[str]) -> str:
    return f"$ {' '.join(map(str, result.args))}\nrc={result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


def load_yaml_docs(text: str) -> list[dict[str, Any]]:
    """YAML documents as Python objects, parsed by PyYAML in .venv-tools (a checkov dependency)."""
    code = "import json, sys, yaml; json.dump([d for d in yaml.safe_load_all(sys.stdin) if d], sys.stdout)"
    result = run([tool("python"), "-c", code], stdin=text)
    assert result.returncode == 0, explain(result)
    return json.loads(result.stdout)


def kustomize(directory: Path) -> str:
    result = run([tool("kubectl"), "kustomize", str(directory)])
    assert result.returncode == 0, explain(result)
    return result.stdout


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    """Each kustomization rendered by kubectl's built-in kustomize, as parsed objects."""
    return {name: load_yaml_docs(kustomize(K8S / sub)) for name, (sub, _) in VARIANTS.items()}


@pytest.fixture(scope="module")
def rendered_text() -> dict[str, str]:
    return {name: kustomize(K8S / sub) for name, (sub, _) in VARIANTS.items()}


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o.get("kind") == kind]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = of_kind(objects, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def pod_template(workload: dict[str, Any]) -> dict[str, Any]:
    if workload["kind"] == "CronJob":
        return workload["spec"]["jobTemplate"]["spec"]["template"]
    return workload["spec"]["template"]


def job_spec(workload: dict[str, Any]) -> dict[str, Any]:
    return workload["spec"]["jobTemplate"]["spec"] if workload["kind"] == "CronJob" else workload["spec"]


def workloads(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objects if o.get("kind") in WORKLOAD_KINDS]


def config_of(objects: list[dict[str, Any]]) -> tuple[dict[str, Any], str]:
    """syncd.toml from the rendered ConfigMap: (parsed TOML, text)."""
    configmap = one(objects, "ConfigMap")
    text = configmap["data"]["syncd.toml"]
    return tomllib.loads(text), text


# --- systemd --------------------------------------------------------------------------------


@pytest.mark.parametrize("unit", UNITS)
def test_systemd_security_score(unit: str) -> None:
    result = run([systemd_analyze(), "security", "--offline=true", "--threshold=20", str(SYSTEMD / unit)])
    assert result.returncode == 0, explain(result)
    match = re.search(r"Overall exposure level for (\S+): (\d+(?:\.\d+)?)", result.stdout + result.stderr)
    assert match, explain(result)
    assert match.group(1) == unit
    assert float(match.group(2)) <= MAX_EXPOSURE, explain(result)


def test_systemd_units_verify() -> None:
    """`systemd-analyze verify` knows every directive; the only complaint allowed is that
    /usr/local/bin/syncd is not installed on this machine."""
    files = [str(SYSTEMD / name) for name in (*UNITS, "syncd-sync.timer")]
    result = run([systemd_analyze(), "verify", "--man=no", *files])
    complaints = [
        line for line in (result.stdout + result.stderr).splitlines()
        if line.strip() and "Command /usr/local/bin/syncd is not executable" not in line
    ]
    assert not complaints, explain(result)


def unit_settings(name: str) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for raw in (SYSTEMD / name).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_systemd_daemon_unit() -> None:
    unit = unit_settings("syncd.service")
    assert unit["Type"] == ["notify"]
    assert unit["ExecStart"] == ["/usr/local/bin/syncd --config /etc/syncd/syncd.toml run"]
    assert unit["DynamicUser"] == ["yes"]
    assert unit["StateDirectory"] == ["syncd"]
    assert unit["LoadCredential"] == ["shutterstock-token:/etc/syncd/shutterstock-token"]
    assert unit["Restart"] == ["on-failure"]
    assert unit["KillSignal"] == ["SIGTERM"]
    assert "2" in unit["RestartPreventExitStatus"][0].split()
    # the example config's grace fits in the stop timeout, and its token is the credential
    config = parse_config(tomllib.loads((SYSTEMD / "syncd.toml.example").read_text()), "syncd.toml.example")
    assert parse_duration(unit["TimeoutStopSec"][0]) > config.sync.grace
    assert str(config.sources[0].token_file) == "/run/credentials/syncd.service/shutterstock-token"
    assert config.state.url == "sqlite:////var/lib/syncd/syncd.db"


def test_systemd_timer_pair() -> None:
    service = unit_settings("syncd-sync.service")
    assert service["Type"] == ["oneshot"]
    assert service["ExecStart"] == ["/usr/local/bin/syncd --config /etc/syncd/syncd.toml sync"]
    assert service["LoadCredential"] == ["shutterstock-token:/etc/syncd/shutterstock-token"]
    assert parse_duration(service["TimeoutStopSec"][0]) > 30
    timer = unit_settings("syncd-sync.timer")
    assert timer["Persistent"] == ["true"]
    assert timer["RandomizedDelaySec"]
    calendar = run([systemd_analyze(), "calendar", timer["OnCalendar"][0]])
    assert calendar.returncode == 0, explain(calendar)


# --- Kubernetes -----------------------------------------------------------------------------


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_kustomization_validates(variant: str, rendered_text: dict[str, str]) -> None:
    result = run([tool("kubernetes-validate"), "--strict", "-k", K8S_VERSION, "-"], stdin=rendered_text[variant])
    assert result.returncode == 0, explain(result)
    assert "passed" in result.stdout + result.stderr
    assert "ERROR" not in result.stdout + result.stderr, explain(result)


def test_manifest_files_validate() -> None:
    """Every manifest file on its own too, the example Secret included (kustomizations aside)."""
    files = sorted(str(p) for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml")
    assert len(files) >= 8
    result = run([tool("kubernetes-validate"), "--strict", "-k", K8S_VERSION, *files])
    assert result.returncode == 0, explain(result)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_one_workload_per_variant(variant: str, rendered: dict[str, list[dict[str, Any]]]) -> None:
    """The CronJob and the Deployment never come out of one kustomization: they share the PVC."""
    kinds = {w["kind"] for w in workloads(rendered[variant])}
    assert kinds == VARIANTS[variant][1]
    for kind in ("Namespace", "ServiceAccount", "ConfigMap", "PersistentVolumeClaim", "NetworkPolicy"):
        one(rendered[variant], kind)
    assert not of_kind(rendered[variant], "Secret"), "no Secret is rendered: the user creates it"


def test_cronjob_policy(rendered: dict[str, list[dict[str, Any]]]) -> None:
    cronjob = one(rendered["default"], "CronJob")
    spec = cronjob["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["startingDeadlineSeconds"] > 0
    job = spec["jobTemplate"]["spec"]
    assert job["activeDeadlineSeconds"] > 0
    assert job["backoffLimit"] >= 0
    assert job["template"]["spec"]["restartPolicy"] == "Never"  # podFailurePolicy needs it
    container_names = {c["name"] for c in job["template"]["spec"]["containers"]}
    fail_codes: set[int] = set()
    for rule in job["podFailurePolicy"]["rules"]:
        on_codes = rule.get("onExitCodes")
        if rule["action"] == "FailJob" and on_codes and on_codes["operator"] == "In":
            assert on_codes.get("containerName", next(iter(container_names))) in container_names
            fail_codes.update(on_codes["values"])
    assert {2, 3} <= fail_codes, "a configuration error (2) or refused credentials (3) must fail the Job at once"
    assert 0 not in fail_codes and 1 not in fail_codes


def test_backfill_job(rendered: dict[str, list[dict[str, Any]]]) -> None:
    job = one(rendered["backfill"], "Job")
    container = pod_template(job)["spec"]["containers"][0]
    assert container["args"][-1] == "backfill"
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    fail_codes = {
        code for rule in job["spec"]["podFailurePolicy"]["rules"] if rule["action"] == "FailJob"
        for code in rule.get("onExitCodes", {}).get("values", [])
    }
    assert 2 in fail_codes


def test_daemon_deployment(rendered: dict[str, list[dict[str, Any]]]) -> None:
    deployment = one(rendered["daemon"], "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"  # never two pods on one state PVC
    template = pod_template(deployment)
    container = template["spec"]["containers"][0]
    assert container["args"][-1] == "run"
    ports = {p.get("name"): p["containerPort"] for p in container["ports"]}
    for probe_name in ("livenessProbe", "readinessProbe"):
        probe = container[probe_name]["httpGet"]
        assert probe["path"] == "/healthz"
        assert ports.get(probe["port"], probe["port"]) == METRICS_PORT
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(METRICS_PORT)
    assert annotations["prometheus.io/path"] == "/metrics"
    config, _ = config_of(rendered["daemon"])
    assert config["metrics"]["listen"] == f"0.0.0.0:{METRICS_PORT}", "probes need syncd to listen beyond loopback"


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_pods_hardened_and_wired(variant: str, rendered: dict[str, list[dict[str, Any]]]) -> None:
    objects = rendered[variant]
    config, config_text = config_of(objects)
    parsed = parse_config(config, "configmap syncd.toml")  # syncd itself accepts the ConfigMap
    account = one(objects, "ServiceAccount")
    assert account["automountServiceAccountToken"] is False
    claim = one(objects, "PersistentVolumeClaim")["metadata"]["name"]
    policy = one(objects, "NetworkPolicy")
    for workload in workloads(objects):
        template = pod_template(workload)
        pod = template["spec"]
        labels = template["metadata"]["labels"]
        assert all(labels.get(k) == v for k, v in policy["spec"]["podSelector"]["matchLabels"].items()), \
            "the NetworkPolicy must select the pods"
        assert pod["serviceAccountName"] == account["metadata"]["name"]
        assert pod["automountServiceAccountToken"] is False
        security = pod["securityContext"]
        assert security["runAsNonRoot"] is True
        assert security["runAsUser"] >= 10000
        assert security["seccompProfile"]["type"] == "RuntimeDefault"
        assert pod["terminationGracePeriodSeconds"] > parsed.sync.grace
        volumes = {v["name"]: v for v in pod["volumes"]}
        (container,) = pod["containers"]
        assert re.fullmatch(r"[\w.\-/:]+@sha256:[0-9a-f]{64}", container["image"]), container["image"]
        assert container["imagePullPolicy"] == "Always"
        csc = container["securityContext"]
        assert csc["allowPrivilegeEscalation"] is False
        assert csc["readOnlyRootFilesystem"] is True
        assert csc["capabilities"]["drop"] == ["ALL"]
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"][bound])
        mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        assert "emptyDir" in mounts[env["TMPDIR"]], "TMPDIR must be a writable emptyDir"
        state_dir = parsed.state.url.removeprefix("sqlite:///").rsplit("/", 1)[0]
        assert mounts[state_dir]["persistentVolumeClaim"]["claimName"] == claim
        token_dir = str(parsed.sources[0].token_file.parent)
        assert mounts[token_dir]["secret"]["secretName"] == "syncd-token"
        config_dir = container["args"][container["args"].index("--config") + 1].rsplit("/", 1)[0]
        assert mounts[config_dir]["configMap"]["name"] == one(objects, "ConfigMap")["metadata"]["name"]
        assert not any("valueFrom" in e and "secretKeyRef" in e["valueFrom"] for e in container.get("env", []))
    assert "token =" not in config_text and "secret_access_key" not in config_text


def test_network_policy(rendered: dict[str, list[dict[str, Any]]]) -> None:
    policy = one(rendered["default"], "NetworkPolicy")
    spec = policy["spec"]
    assert set(spec["policyTypes"]) == {"Ingress", "Egress"}
    egress_ports = {(p.get("protocol", "TCP"), p["port"]) for rule in spec["egress"] for p in rule["ports"]}
    assert {("TCP", 443), ("UDP", 53)} <= egress_ports
    ingress_ports = {p["port"] for rule in spec["ingress"] for p in rule["ports"]}
    assert ingress_ports == {METRICS_PORT}


def test_image_digest_set_in_one_place(tmp_path: Path) -> None:
    """image/kustomization.yaml (a Component) sets the image of all three variants."""
    copy = tmp_path / "kubernetes"
    shutil.copytree(K8S, copy)
    component = copy / "image" / "kustomization.yaml"
    digest = "sha256:" + "ab" * 32
    text = component.read_text()
    assert PLACEHOLDER_DIGEST in text
    component.write_text(text.replace(PLACEHOLDER_DIGEST, digest)
                         .replace("newName: ghcr.io/example/syncd", "newName: registry.example.net/media/syncd"))
    for sub, _ in VARIANTS.values():
        objects = load_yaml_docs(kustomize(copy / sub))
        images = {c["image"] for w in workloads(objects) for c in pod_template(w)["spec"]["containers"]}
        assert images == {f"registry.example.net/media/syncd@{digest}"}, (sub, images)


# --- checkov, hadolint ----------------------------------------------------------------------


def test_checkov_zero_failed() -> None:
    env = dict(os.environ, BC_SKIP_MAPPING="TRUE")  # no call to the vendor's API (offline; same checks)
    result = run([tool("checkov"), "-d", "deploy/", "--compact", "--quiet"], env=env, timeout=300)
    out = result.stdout
    assert result.returncode == 0, explain(result)
    blocks = dict(re.findall(r"(\w+) scan results:\s*\n\s*\nPassed checks: \d+, Failed checks: (\d+)", out))
    assert {"kubernetes", "kustomize", "dockerfile"} <= set(blocks), explain(result)
    assert all(failed == "0" for failed in blocks.values()), explain(result)
    for passed in re.findall(r"Passed checks: (\d+)", out):
        assert int(passed) > 0


def test_checkov_skips_carry_reasons() -> None:
    """A check may be skipped only by an annotation with a written reason."""
    for path in DEPLOY.rglob("*"):
        if path.is_file():
            for check, reason in re.findall(r"checkov\.io/skip\d+:\s*\"?(CKV\w*)=?([^\"\n]*)", path.read_text()):
                assert len(reason.strip()) >= 15, f"{path}: skip of {check} without a real reason"


def test_hadolint_clean() -> None:
    result = run([tool("hadolint"), str(DOCKERFILE)])
    assert result.returncode == 0, explain(result)
    assert result.stdout.strip() == ""


def test_dockerfile_shape() -> None:
    text = DOCKERFILE.read_text()
    stages = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert stages == ["python:3.11-slim", "python:3.11-slim"], "multi-stage: builder and final"
    final = text[[m.start() for m in re.finditer(r"^FROM ", text, re.M)][-1]:]
    assert re.search(r"^USER 10001$", final, re.M)
    assert '\nENTRYPOINT ["syncd"]' in final and '\nCMD ["run"]' in final
    assert "HEALTHCHECK" in final and "/healthz" in final
    assert "COPY --from=builder /opt/syncd /opt/syncd" in final
    assert not re.search(r"\b(apt-get|gcc|build-essential|pip install)\b", final), "no build tools in the final image"
    assert "--no-cache-dir" in text
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", ".venv-tools"} <= set(ignored)


# --- secrets --------------------------------------------------------------------------------

SECRET_PATTERNS = [
    re.compile(r"AKIA[0-9A-Z]{16}"),                                         # AWS access key id
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"(?i)aws_secret_access_key\s*[=:]\s*[A-Za-z0-9/+]{30,}"),
    re.compile(r"(?i)bearer\s+[A-Za-z0-9._~+/\-]{20,}"),
    re.compile(r"\bv2/[A-Za-z0-9+/=_\-]{40,}"),                               # Shutterstock OAuth token shape
]


def entropy(word: str) -> float:
    counts = Counter(word)
    return -sum(n / len(word) * math.log2(n / len(word)) for n in counts.values())


def secret_findings(text: str) -> list[str]:
    found = [m.group(0) for pattern in SECRET_PATTERNS for m in pattern.finditer(text)]
    # any long random-looking word: mixed case and digits (not an identifier, not a hex digest)
    # with high entropy - a pasted token or key
    found += [
        w for w in re.findall(r"[A-Za-z0-9+/=_\-]{32,}", text)
        if re.search(r"[a-z]", w) and re.search(r"[A-Z]", w) and re.search(r"[0-9]", w) and entropy(w) > 4.0
    ]
    return found


def test_secret_detector_works() -> None:
    assert secret_findings("AWS_ACCESS_KEY_ID=AKIA" + "ABCDEFGHIJKLMNOP")
    assert secret_findings("token: " + secrets.token_urlsafe(48) + "aZ9")
    assert not secret_findings("image: ghcr.io/example/syncd@" + PLACEHOLDER_DIGEST)
    assert not secret_findings("image: registry.example.net/syncd@sha256:" + secrets.token_hex(32))
    assert not secret_findings("function syncd_register_attachment_metadata_fields_for_rest_api() {}")


def test_no_real_secret_in_deploy() -> None:
    files = [p for p in DEPLOY.rglob("*") if p.is_file()] + [ROOT / ".dockerignore"]
    for path in files:
        findings = secret_findings(path.read_text())
        assert not findings, f"{path.relative_to(ROOT)} looks like it holds a secret: {findings}"
    for path in K8S.rglob("*.yaml"):
        for document in load_yaml_docs(path.read_text()):
            if document.get("kind") == "Secret":
                values = {**document.get("data", {}), **document.get("stringData", {})}
                for key, value in values.items():
                    assert value == "" or value.startswith("<"), f"{path}: Secret key {key} is not a placeholder"


# --- the installer --------------------------------------------------------------------------


def test_install_script_is_idempotent_and_quick() -> None:
    for name in ("kubernetes-validate", "checkov", "hadolint", "kubectl"):
        tool(name)
    started = time.monotonic()
    result = run(["bash", INSTALL], timeout=600)
    assert result.returncode == 0, explain(result)
    assert time.monotonic() - started < 20, "a second run must be quick"
    assert ".venv-tools/" in (ROOT / ".gitignore").read_text().split()
