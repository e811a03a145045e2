#!/usr/bin/env python3
"""Checks deploy/compose.yaml the way `docker compose config` would, without Docker.

Usage: compose_check.py REPO_ROOT

Fails (exit 1, one line per finding) when the file does not parse as YAML, names a
service, network, volume or secret it does not define, leaves the nginx upstream
without its service, puts secrets in the file itself, trusts a wide proxy network,
runs fewer than two API nodes, keeps attachments anywhere but an S3-compatible
object store every node reaches (ATTACHMENT_STORE=s3://..., credentials from compose
secrets, plain http only to a store on internal networks, no attachments volume), or
names an image that is not pinned (see `image_problem`).
"""
import ipaddress
import os
import re
import subprocess
import sys

import yaml

SERVICE_KEYS = {
    "build", "image", "command", "entrypoint", "environment", "env_file", "volumes",
    "ports", "expose", "networks", "depends_on", "deploy", "healthcheck", "restart",
    "secrets", "configs", "user", "read_only", "tmpfs", "cap_drop", "cap_add",
    "security_opt", "labels", "logging", "stop_grace_period", "stop_signal", "init",
    "working_dir", "hostname", "ulimits", "profiles",
}
TOP_KEYS = {"services", "networks", "volumes", "secrets", "configs", "name"}
NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
# Environment variables whose value is a secret: never a literal in the compose file.
SECRET = re.compile(r"PASSWORD|SECRET|MASTER_KEY|TOKEN|PRIVATE", re.I)


def as_list(value):
    if value is None:
        return []
    if isinstance(value, dict):
        return list(value)
    if isinstance(value, str):
        return [value]
    return list(value)


# Tags that move to a new release by themselves.
MOVING_TAGS = {"latest", "stable", "mainline", "edge", "lts", "alpine", "slim"}
# MinIO's releases are dated: RELEASE.2025-04-22T22-12-26Z (an optional -suffix).
MINIO_RELEASE = re.compile(r"^RELEASE\.\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z(-[a-z0-9]+)?$")
VERSIONED = re.compile(r"^v?\d+\.\d+")


def image_problem(image):
    """Why `image` is not pinned (None: it is). A digest pins anything; otherwise the tag
    must be a version with at least major.minor (`postgres:15.10`, not `postgres:15`,
    `nginx:stable` or no tag, which is `latest`), and MinIO's images a dated RELEASE tag."""
    if not isinstance(image, str) or not image.strip():
        return "no image name"
    if re.search(r"@sha256:[0-9a-f]{64}$", image):
        return None
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return "no tag (that is `latest`, whatever it is on the day of the pull)"
    repo, tag = image.rsplit(":", 1)
    if tag.lower() in MOVING_TAGS:
        return f"the tag {tag!r} moves to each new release"
    if re.search(r"(^|/)minio/(minio|mc)$", repo):
        if not MINIO_RELEASE.match(tag):
            return f"MinIO's tag {tag!r} is not a dated release (RELEASE.YYYY-MM-DDTHH-MM-SSZ)"
        return None
    if not VERSIONED.match(tag):
        return f"the tag {tag!r} is not a version (at least major.minor)"
    return None


def environment(service):
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) if "=" in e else (e, None) for e in env)
    return env


def check_the_checker():
    """The pin rule refuses what it should (a rule that lets everything through would
    pass this file as well): run on every check, it costs nothing."""
    refused = ["minio/minio", "quay.io/minio/minio:latest", "minio/mc:RELEASE.latest",
               "postgres", "postgres:15", "nginx:stable", "registry:5000/app"]
    pinned = ["quay.io/minio/minio:RELEASE.2025-04-22T22-12-26Z", "postgres:15.10",
              "nginx:1.27.3", "registry:5000/app:2.1", "nginx@sha256:" + "0" * 64]
    wrong = [i for i in refused if image_problem(i) is None]
    wrong += [i for i in pinned if image_problem(i) is not None]
    if wrong:
        raise SystemExit(f"compose_check.py: the image pin rule is wrong about {wrong}")


def main() -> int:
    check_the_checker()
    root = sys.argv[1]
    deploy = os.path.join(root, "deploy")
    errors = []
    try:
        with open(os.path.join(deploy, "compose.yaml"), encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except yaml.YAMLError as e:
        print(f"compose.yaml: not valid YAML: {e}")
        return 1
    if not isinstance(doc, dict) or not isinstance(doc.get("services"), dict):
        print("compose.yaml: no services mapping")
        return 1
    for key in doc:
        if key not in TOP_KEYS and not key.startswith("x-"):
            errors.append(f"unknown top-level key {key!r}")
    services = doc["services"]
    networks = doc.get("networks") or {}
    volumes = doc.get("volumes") or {}
    secrets = doc.get("secrets") or {}

    for name, svc in services.items():
        if not NAME.match(name):
            errors.append(f"service name {name!r} is not a valid compose name")
        if not isinstance(svc, dict):
            errors.append(f"service {name}: not a mapping")
            continue
        for key in svc:
            if key not in SERVICE_KEYS:
                errors.append(f"service {name}: unknown key {key!r}")
        if "image" not in svc and "build" not in svc:
            errors.append(f"service {name}: neither image nor build")
        if "image" in svc:
            problem = image_problem(svc["image"])
            if problem:
                errors.append(f"service {name}: image {svc['image']!r} is not pinned: {problem}")
        for dep in as_list(svc.get("depends_on")):
            if dep not in services:
                errors.append(f"service {name}: depends_on unknown service {dep!r}")
        for net in as_list(svc.get("networks")):
            if net not in networks:
                errors.append(f"service {name}: unknown network {net!r}")
        for vol in svc.get("volumes") or []:
            source = vol.split(":", 1)[0] if isinstance(vol, str) else vol.get("source", "")
            if source and not source.startswith((".", "/")) and source not in volumes:
                errors.append(f"service {name}: unknown volume {source!r}")
        for sec in as_list(svc.get("secrets")):
            sec = sec if isinstance(sec, str) else sec.get("source")
            if sec not in secrets:
                errors.append(f"service {name}: unknown secret {sec!r}")
        for env_file in as_list(svc.get("env_file")):
            env_file = env_file if isinstance(env_file, str) else env_file.get("path")
            path = os.path.join(deploy, env_file)
            ignored = subprocess.run(
                ["git", "-C", root, "check-ignore", "-q", path], check=False
            ).returncode == 0
            if not ignored:
                errors.append(f"service {name}: env_file {env_file} is not git-ignored")
            if not os.path.exists(path + ".example"):
                errors.append(f"service {name}: no {env_file}.example beside env_file {env_file}")
        svc_secrets = {
            sec if isinstance(sec, str) else sec.get("source")
            for sec in as_list(svc.get("secrets"))
        }
        for key, value in environment(svc).items():
            text = "" if value is None else str(value)
            if key.endswith("_FILE") and text.startswith("/run/secrets/"):
                # A compose secret's file: the secret must be one this service mounts.
                if text[len("/run/secrets/"):] not in svc_secrets:
                    errors.append(f"service {name}: {key} names a secret the service does not mount")
            elif "change-me" in text.lower():
                errors.append(f"service {name}: {key} is a placeholder literal")
            elif SECRET.search(key) and text:
                errors.append(f"service {name}: secret {key} written in the file")
            if "://" in text and "@" in text.split("://", 1)[1].split("/", 1)[0]:
                errors.append(f"service {name}: {key} carries credentials")

    api = services.get("api") or {}
    env = environment(api)
    replicas = ((api.get("deploy") or {}).get("replicas")) or 1
    if replicas < 2:
        errors.append("api: fewer than two nodes (deploy.replicas)")
    # Attachments: an object store every node reaches, not a volume of one node.
    store = str(env.get("ATTACHMENT_STORE") or "")
    if not store.startswith("s3://"):
        errors.append("api: ATTACHMENT_STORE is not an s3:// object store: every node must reach the attachments")
    for vol in api.get("volumes") or []:
        target = vol.split(":")[1] if isinstance(vol, str) and ":" in vol else (
            vol.get("target", "") if isinstance(vol, dict) else "")
        if target.rstrip("/") == "/data/attachments":
            errors.append("api: a volume at /data/attachments: attachments belong in the object store")
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        if env.get(key):
            errors.append(f"api: {key} written in the file; use {key}_FILE with a compose secret")
        if not env.get(f"{key}_FILE"):
            errors.append(f"api: {key}_FILE missing: the store's credentials come from compose secrets")
    endpoint = str(env.get("AWS_ENDPOINT_URL") or "")
    host = endpoint.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
    allow_http = str(env.get("AWS_ALLOW_HTTP") or "").lower() in ("true", "1")
    if endpoint.startswith("http://") or allow_http:
        # In clear only to a service of this file that sits on internal networks alone.
        store_svc = services.get(host)
        if not endpoint.startswith("http://") or store_svc is None:
            errors.append(f"api: AWS_ALLOW_HTTP / http:// endpoint {endpoint!r} is not a service of this file")
        else:
            for net in as_list(store_svc.get("networks")):
                if not (networks.get(net) or {}).get("internal"):
                    errors.append(f"{host}: plain-http object store on non-internal network {net!r}")
            if not allow_http:
                errors.append("api: http:// endpoint without AWS_ALLOW_HTTP: the nodes would refuse it")
    elif endpoint and not endpoint.startswith("https://"):
        errors.append(f"api: AWS_ENDPOINT_URL {endpoint!r} is neither https:// nor a service here")
    for sec_name, sec in secrets.items():
        path = (sec or {}).get("file")
        if path:
            full = os.path.join(deploy, path)
            ignored = subprocess.run(
                ["git", "-C", root, "check-ignore", "-q", full], check=False
            ).returncode == 0
            if not ignored:
                errors.append(f"secret {sec_name}: file {path} is not git-ignored")

    # TRUSTED_PROXIES: only small networks defined here, each holding the proxy.
    subnets = []
    for net in networks.values():
        for cfg in ((net or {}).get("ipam") or {}).get("config") or []:
            if "subnet" in cfg:
                subnets.append(ipaddress.ip_network(cfg["subnet"]))
    proxy_addresses = set()
    for net in ((services.get("proxy") or {}).get("networks") or {}).values() if isinstance(
        (services.get("proxy") or {}).get("networks"), dict
    ) else []:
        if net and net.get("ipv4_address"):
            proxy_addresses.add(ipaddress.ip_address(net["ipv4_address"]))
    trusted = [t.strip() for t in str(env.get("TRUSTED_PROXIES") or "").split(",") if t.strip()]
    if not trusted:
        errors.append("api: TRUSTED_PROXIES is empty: clients would all look like the proxy")
    for entry in trusted:
        try:
            net = ipaddress.ip_network(entry, strict=True)
        except ValueError as e:
            errors.append(f"api: TRUSTED_PROXIES entry {entry!r}: {e}")
            continue
        if net.num_addresses > 256:
            errors.append(f"api: TRUSTED_PROXIES {entry} is wider than a /24")
        if not any(net.subnet_of(s) for s in subnets if s.version == net.version):
            errors.append(f"api: TRUSTED_PROXIES {entry} is not inside a network of this file")
        if not any(a in net for a in proxy_addresses):
            errors.append(f"api: TRUSTED_PROXIES {entry} does not hold the proxy's address")

    # The nginx upstream names services of this file.
    with open(os.path.join(deploy, "nginx.conf"), encoding="utf-8") as f:
        for host in re.findall(r"^\s*server\s+([A-Za-z][\w.-]*):\d+", f.read(), re.M):
            if host not in services:
                errors.append(f"nginx.conf: upstream {host!r} is not a compose service")

    for e in errors:
        print(f"compose.yaml: {e}")
    if not errors:
        print(f"compose.yaml: {len(services)} services ({', '.join(services)}) check out")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
