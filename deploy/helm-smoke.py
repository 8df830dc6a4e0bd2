"""Runs the six processes of the Helm chart on this machine with the environment the chart gives
them, to prove that the chart wires every variable under the name the programs read.

Called by deploy/helm-smoke.sh, with the rendered chart on stdin. For each Deployment it builds
the container's environment as the kubelet would (envFrom the ConfigMap, then env: values,
secretKeyRef from the rendered Secret, resourceFieldRef limits.cpu rounded up), starts
`genie <args>` with exactly that environment (nothing inherited), the cluster's Service names
pointed at 127.0.0.1, then checks that the gateway turns ready with every service of the chart
among its serving upstreams, that the administrator of the Secret can log in, that a call
reaches each service, and that each process stops cleanly on SIGTERM.
"""

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import yaml

genie = sys.argv[1]
logdir = sys.argv[2]
docs = [d for d in yaml.safe_load_all(sys.stdin) if d]
by_kind = {}
for doc in docs:
    by_kind.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
secret = next(iter(by_kind["Secret"].values()))["stringData"]


def cpu_ceil(quantity):
    quantity = str(quantity)
    if quantity.endswith("m"):
        return str(math.ceil(int(quantity[:-1]) / 1000))
    return str(math.ceil(float(quantity)))


def local(value):
    # In the cluster, http://<release>-auth:50051; here, the same port on loopback.
    value = re.sub(r"http://[a-z0-9-]+:(\d+)", r"http://127.0.0.1:\1", value)
    return value.replace("0.0.0.0:", "127.0.0.1:")


processes = {}
env_of = {}
services = set()  # the gateway's names of its upstreams: svc-<component>
for name, deployment in by_kind["Deployment"].items():
    component = deployment["metadata"]["labels"]["app.kubernetes.io/component"]
    if component != "gateway":
        services.add(f"svc-{component}")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {}
    for source in container.get("envFrom", []):
        env.update(by_kind["ConfigMap"][source["configMapRef"]["name"]]["data"])
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = entry["value"]
            continue
        ref = entry["valueFrom"]
        if "secretKeyRef" in ref:
            key = ref["secretKeyRef"]["key"]
            if key in secret:
                env[entry["name"]] = secret[key]
            elif not ref["secretKeyRef"].get("optional"):
                sys.exit(f"{name}: the Secret has no key {key}, which the pod requires")
        elif "resourceFieldRef" in ref:
            env[entry["name"]] = cpu_ceil(container["resources"]["limits"]["cpu"])
    env = {key: local(value) for key, value in env.items()}
    env["PATH"] = "/usr/bin:/bin"
    env_of[name] = env
    log = open(os.path.join(logdir, f"{name}.log"), "wb")
    processes[name] = subprocess.Popen([genie, *container["args"]], env=env, stdout=log, stderr=log)
    print(f"started  {name}: genie {' '.join(container['args'])} with {len(env) - 1} variables: "
          + ", ".join(sorted(k for k in env if k != "PATH")))

gateway_env = next(env for name, env in env_of.items() if name.endswith("-gateway"))
base = "http://" + gateway_env["GATEWAY_ADDR"]


def call(method, path, body=None, token=None):
    request = urllib.request.Request(base + path, method=method)
    if body is not None:
        request.data = json.dumps(body).encode()
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")
    except (urllib.error.URLError, ConnectionError):
        return None, None


failures = []
started = time.monotonic()
try:
    deadline = time.monotonic() + 120
    status = None
    while time.monotonic() < deadline:
        for name, process in processes.items():
            if process.poll() is not None:
                raise SystemExit(f"{name} exited with {process.returncode}: see {logdir}/{name}.log")
        status, body = call("GET", "/health/ready")
        if status == 200:
            break
        time.sleep(0.5)
    if status != 200:
        raise SystemExit(f"the gateway did not turn ready in 120 s (last: {status})")
    print(f"ok       GET /health/ready 200 after {time.monotonic() - started:.1f} s: {', '.join(u['name'] + ' ' + u['status'] for u in body['upstreams'])}")
    # Each gRPC Deployment of the chart (svc-queue too: genie.queue.v1.Queue) is an upstream the
    # gateway checks, and serving.
    missing = sorted(services - {u["name"] for u in body["upstreams"] if u["status"] == "serving"})
    if missing:
        raise SystemExit(f"GET /health/ready does not list as serving: {', '.join(missing)}")
    print(f"ok       every service of the chart is an upstream the gateway finds serving ({len(services)})")

    auth_env = next(env for name, env in env_of.items() if name.endswith("-auth"))
    status, body = call("POST", "/auth/login",
                        {"email": auth_env["ADMIN_EMAIL"], "password": secret["ADMIN_PASSWORD"]})
    if status != 200:
        raise SystemExit(f"login of ADMIN_EMAIL failed: {status} {body}")
    token = body["data"]["access_token"]
    print("ok       POST /auth/login 200 (svc-auth: ADMIN_EMAIL, ADMIN_PASSWORD, DIRECTUS_SECRET)")
    for method, path, payload, what in [
        ("GET", "/users/me", None, "svc-auth"),
        ("GET", "/api/usage", None, "svc-usage"),
        ("POST", "/api/credentials/create-profile",
         {"platform": "instagram", "username": "helm-smoke", "credentials": {"password": "x"}},
         "svc-credentials: CREDENTIALS_ENC_KEY_B64"),
        ("GET", "/api/vault", None, "svc-credentials"),
        ("GET", "/api/skills?limit=1", None, "svc-skills"),
        ("GET", "/api/queue/jobs?limit=1", None, "svc-queue"),
    ]:
        status, body = call(method, path, payload, token)
        if status not in (200, 201):
            failures.append(f"{method} {path}: {status} {body}")
            print(f"FAIL     {method} {path} {status}: {body}")
        else:
            print(f"ok       {method} {path} {status} ({what})")
finally:
    stopping = time.monotonic()
    for name, process in processes.items():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for name, process in processes.items():
        try:
            code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            code = "killed after 30 s"
        if code != 0:
            failures.append(f"{name} stopped with {code} on SIGTERM")
        print(f"{'ok  ' if code == 0 else 'FAIL'}     {name} stopped on SIGTERM ({code}), "
              f"{time.monotonic() - stopping:.1f} s after it")

if failures:
    sys.exit("helm-smoke: " + "; ".join(failures))
print("helm-smoke: the chart's environment runs every component")
