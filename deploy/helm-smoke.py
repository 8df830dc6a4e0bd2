"""Runs the processes of the Helm chart (one per Deployment: the gateway, five services, the
queue worker) on this machine with the environment the chart gives them, to prove that the chart
wires every variable under the name the programs read.

Called by deploy/helm-smoke.sh, with the rendered chart on stdin. For each Deployment it builds
the container's environment as the kubelet would (envFrom the ConfigMap, then env: values,
secretKeyRef from the rendered Secret, resourceFieldRef limits.cpu rounded up), starts
`genie <args>` with exactly that environment (nothing inherited), the cluster's Service names
pointed at 127.0.0.1 and each PersistentVolumeClaim a pod mounts mapped to one local directory
per claim (so that pods mounting the same claim share it, as in the cluster; a variable naming
the mount path names that directory). Then it checks that the gateway turns ready with every
service of the chart among its serving upstreams, that each Deployment without a Service (the
queue worker) answers its gRPC readiness probe SERVING, that the administrator of the Secret can
log in, that a call reaches each service, that a PNG uploaded through the gateway and resized by
a media job comes back from the job's output_url (svc-queue and the worker through the shared
volume), and that each process stops cleanly on SIGTERM.
"""

import json
import math
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
import zlib

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
serviceless = {}  # Deployments without a Service (the queue worker): their readiness probes
volumes_dir = os.path.join(logdir, "volumes")
for name, deployment in by_kind["Deployment"].items():
    component = deployment["metadata"]["labels"]["app.kubernetes.io/component"]
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    if name not in by_kind["Service"]:
        serviceless[name] = container["readinessProbe"]
    elif component != "gateway":
        services.add(f"svc-{component}")
    # A claim is one directory here, whichever pods mount it.
    mounts = {}
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"]
              for v in pod.get("volumes", []) if "persistentVolumeClaim" in v}
    for mount in container.get("volumeMounts", []):
        if mount["name"] in claims:
            path = os.path.join(volumes_dir, claims[mount["name"]], mount.get("subPath", ""))
            os.makedirs(path, exist_ok=True)
            mounts[mount["mountPath"]] = path.rstrip("/")
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
    for key, value in env.items():
        for mount_path, path in mounts.items():
            if value == mount_path or value.startswith(mount_path + "/"):
                env[key] = path + value[len(mount_path):]
    env["PATH"] = "/usr/bin:/bin"
    env_of[name] = env
    log = open(os.path.join(logdir, f"{name}.log"), "wb")
    processes[name] = subprocess.Popen([genie, *container["args"]], env=env, stdout=log, stderr=log)
    print(f"started  {name}: genie {' '.join(container['args'])} with {len(env) - 1} variables: "
          + ", ".join(sorted(k for k in env if k != "PATH"))
          + "".join(f"; {claims[m['name']]} at {m['mountPath']} is {mounts[m['mountPath']]}"
                    for m in container.get("volumeMounts", []) if m["name"] in claims))

gateway_env = next(env for name, env in env_of.items() if name.endswith("-gateway"))
base = "http://" + gateway_env["GATEWAY_ADDR"]


def call(method, path, body=None, token=None, raw=None, content_type=None, decode=True):
    """The gateway's answer: (status, JSON body), or with decode=False (status, bytes,
    content type); (None, None) when it does not answer. `raw` is a body sent as it is."""
    request = urllib.request.Request(base + path, method=method)
    if body is not None:
        request.data = json.dumps(body).encode()
        request.add_header("Content-Type", "application/json")
    if raw is not None:
        request.data = raw
        request.add_header("Content-Type", content_type)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            if not decode:
                return answer.status, answer.read(), answer.headers.get("Content-Type")
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as err:
        text = err.read()
        if not decode:
            return err.code, text, err.headers.get("Content-Type")
        return err.code, json.loads(text or b"null")
    except (urllib.error.URLError, ConnectionError):
        return (None, None) if decode else (None, None, None)


def grpc_health(port, service="", timeout=3.0):
    """grpc.health.v1.Health/Check on 127.0.0.1:port over HTTP/2 without TLS, as the kubelet's
    gRPC probe asks it: the status (1 SERVING, 2 NOT_SERVING), or None when there is no answer.
    Written out with the standard library (no gRPC package): one request, no HPACK decoding."""
    def frame(kind, flags, stream, payload=b""):
        return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload

    def literal(name, value):  # HPACK: a literal field without indexing, new name, no Huffman
        return b"\x00" + bytes([len(name)]) + name.encode() + bytes([len(value)]) + value.encode()

    headers = b"".join(literal(k, v) for k, v in [
        (":method", "POST"), (":scheme", "http"), (":path", "/grpc.health.v1.Health/Check"),
        (":authority", f"127.0.0.1:{port}"), ("content-type", "application/grpc"), ("te", "trailers")])
    request = (b"\x0a" + bytes([len(service)]) + service.encode()) if service else b""
    message = b"\x00" + struct.pack(">I", len(request)) + request
    body = b""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
            conn.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0)
                         + frame(1, 0x4, 1, headers) + frame(0, 0x1, 1, message))
            buffer = b""
            while True:
                while len(buffer) < 9 or len(buffer) < 9 + int.from_bytes(buffer[:3], "big"):
                    chunk = conn.recv(65536)
                    if not chunk:
                        return None
                    buffer += chunk
                length, kind, flags = int.from_bytes(buffer[:3], "big"), buffer[3], buffer[4]
                stream = int.from_bytes(buffer[5:9], "big") & 0x7FFFFFFF
                payload, buffer = buffer[9:9 + length], buffer[9 + length:]
                if kind == 4 and not flags & 0x1:  # SETTINGS: acknowledged
                    conn.sendall(frame(4, 0x1, 0))
                elif kind == 0 and stream == 1:  # DATA
                    if flags & 0x8:
                        payload = payload[1:len(payload) - payload[0]]
                    body += payload
                elif kind == 7 or (kind == 3 and stream == 1):  # GOAWAY, RST_STREAM
                    return None
                if stream == 1 and kind in (0, 1) and flags & 0x1:  # END_STREAM
                    break
    except OSError:
        return None
    if len(body) < 5:
        return None  # trailers only: an error status (e.g. NOT_FOUND for an unknown service)
    response = body[5:5 + int.from_bytes(body[1:5], "big")]
    return response[1] if response[:1] == b"\x08" else 0  # field 1, status (0 is left out)


def png(width, height):
    """A small RGB PNG, made with zlib and struct."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\x00" + b"".join(bytes((x * 8 % 256, y * 16 % 256, 128)) for x in range(width))
                    for y in range(height))  # each row: filter type 0, then RGB pixels
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def png_size(data):
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", data[16:24])


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

    # A Deployment without a Service (the queue worker) shows only in its probes: its gRPC
    # readiness probe, asked as the kubelet asks it, must turn SERVING (the worker: connected to
    # RabbitMQ and consuming).
    for name, probe in serviceless.items():
        if "grpc" not in probe:
            raise SystemExit(f"{name}: its readiness probe is not gRPC: {probe}")
        port, service = probe["grpc"]["port"], probe["grpc"].get("service", "")
        waited = time.monotonic()
        while grpc_health(port, service) != 1:
            if processes[name].poll() is not None:
                raise SystemExit(f"{name} exited with {processes[name].returncode}: see {logdir}/{name}.log")
            if time.monotonic() - waited > 60:
                raise SystemExit(f"{name}: grpc.health.v1 on :{port} (service {service!r}) is not "
                                 f"SERVING after 60 s (last: {grpc_health(port, service)})")
            time.sleep(0.2)
        print(f"ok       {name}: its readiness probe, grpc.health.v1 on :{port} (service {service!r}), "
              f"answers SERVING")

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

    # A media job end to end: svc-queue stores the upload in the files volume, the worker reads
    # it there, resizes it and stores its output there, and svc-queue serves that output.
    boundary = uuid.uuid4().hex
    form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"smoke.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + png(32, 16) + f"\r\n--{boundary}--\r\n".encode()
    status, body = call("POST", "/api/files", token=token, raw=form,
                        content_type=f"multipart/form-data; boundary={boundary}")
    if status != 200:
        raise SystemExit(f"POST /api/files: {status} {body}")
    file_id = body["file"]["id"]
    print(f"ok       POST /api/files {status}: a 32×16 PNG stored as {file_id} (svc-queue, QUEUE_STORAGE_DIR)")
    status, body = call("POST", "/api/queue/media", {
        "operation": "resize_image", "input_file_id": file_id, "params": {"width": 8},
        "creator_profile_id": "0b7c6f5e-3f1a-4f7e-9a55-2d3c4b5a6e7f"}, token)
    if status not in (200, 201):
        raise SystemExit(f"POST /api/queue/media: {status} {body}")
    job_id = body["jobId"]
    print(f"ok       POST /api/queue/media {status}: resize_image to width 8, job {job_id}")
    queued = time.monotonic()
    while True:
        status, body = call("GET", f"/api/queue/jobs/{job_id}", token=token)
        job = (body or {}).get("job") or {}
        if status == 200 and job.get("status") == "completed":
            break
        if status != 200 or job.get("status") in ("failed", "cancelled"):
            raise SystemExit(f"GET /api/queue/jobs/{job_id}: {status} {body}")
        if time.monotonic() - queued > 30:
            raise SystemExit(f"job {job_id} not completed after 30 s: {job.get('status')} "
                             f"(attempts {job.get('attempts')}, error {job.get('error')})")
        time.sleep(0.25)
    output_url = job["result"]["output_url"]
    print(f"ok       GET /api/queue/jobs/{job_id} 200: completed after "
          f"{time.monotonic() - queued:.1f} s (the worker: RabbitMQ, QUEUE_NAME_PREFIX, the volume)")
    status, data, content_type = call("GET", output_url, token=token, decode=False)
    if status != 200 or content_type != "image/png" or (png_size(data or b"") or (0,))[0] != 8:
        raise SystemExit(f"GET {output_url}: {status} {content_type}, {len(data or b'')} bytes, "
                         f"size {png_size(data or b'')}; wanted a PNG 8 pixels wide")
    print(f"ok       GET {output_url} 200: image/png, {'×'.join(map(str, png_size(data)))}, "
          f"{len(data)} bytes (svc-queue reads what the worker wrote)")
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
