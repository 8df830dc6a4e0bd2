"""Checks that the chart knows every setting under the name the programs read.

Three lists must agree: the variables of README.md's configuration table, the string literals
naming variables in the crates' config.rs files (and genie's CLI), and what the chart accepts
(each component's `env` in values.schema.json, the Secret's keys, and the variables the chart
sets itself). Run by deploy/helm-check.sh.
"""

import json
import pathlib
import re
import sys

root = pathlib.Path(__file__).resolve().parents[2]
schema = json.loads((root / "deploy/helm/genie/values.schema.json").read_text())
props = schema["properties"]

chart_env = set()
components = ("gateway", "auth", "usage", "credentials", "skills", "queue", "queueWorker")
for component in components:
    chart_env |= set(props[component]["properties"]["env"]["properties"])
chart_env |= set(props["commonEnv"]["properties"])
secret_keys = set(props["secrets"]["properties"]["values"]["properties"])
# Set by the templates from ports and Service names (templates/_helpers.tpl, "genie.env").
chart_set = {"GATEWAY_ADDR", "AUTH_GRPC_URL", "USAGE_GRPC_URL", "CREDENTIALS_GRPC_URL",
             "AUTH_GRPC_ADDR", "USAGE_GRPC_ADDR", "CREDENTIALS_GRPC_ADDR", "USAGE_TIERS_PATH",
             "GENIE_WORKER_THREADS", "SKILLS_GRPC_URL", "SKILLS_GRPC_ADDR", "QUEUE_GRPC_URL",
             "QUEUE_GRPC_ADDR", "QUEUE_WORKER_HEALTH_ADDR", "QUEUE_STORAGE_DIR"}
chart = chart_env | secret_keys | chart_set
not_for_pods = {"TEST_DATABASE_ADMIN_URL", "TEST_POSTGRES_BIN"}  # read by the tests only

readme = (root / "README.md").read_text()
table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
documented = set()
used_by = {}  # variable: the components README.md says read it
component_of = {"gateway": "gateway", "svc-auth": "auth", "svc-usage": "usage",
                "svc-credentials": "credentials", "`genie invite`": "auth",
                "`genie rotate-keys`": "credentials", "svc-skills": "skills",
                "`genie import-skills`": "skills", "svc-queue": "queue",
                "svc-queue worker": "queueWorker", "`genie serve queue-worker`": "queueWorker"}
everyone = set(components)
for line in table.splitlines():
    if line.startswith("| `"):
        cells = [cell.strip() for cell in line.split("|")]
        names = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[1]))
        documented |= names
        readers = set()
        for reader in cells[3].split(","):
            reader = reader.strip()
            readers |= everyone if reader in ("all", "`genie`") else {component_of.get(reader, reader)}
        for name in names:
            used_by[name] = readers

code = set()
sources = list(root.glob("*/src/config.rs")) + [root / "genie/src/main.rs", root / "common/src/telemetry.rs",
                                                  root / "common/src/db.rs", root / "common/src/grpc.rs"]
for path in sources:
    text = path.read_text().split("#[cfg(test)]", 1)[0]  # not the unit tests' made-up names
    code |= set(re.findall(r'"([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)"', text))
    code |= set(re.findall(r'env = "([A-Z][A-Z0-9_]+)"', text))
# tracing-subscriber's EnvFilter reads RUST_LOG by its default name (common/src/telemetry.rs).
code.add("RUST_LOG")
# The gateway composes its rate-limit names: RateLimit::from_env("GATEWAY_LOGIN", ..) reads
# GATEWAY_LOGIN_LIMIT and GATEWAY_LOGIN_WINDOW_SECS.
for prefix in [c for c in code if c + "_LIMIT" in documented]:
    code.discard(prefix)
    code |= {prefix + "_LIMIT", prefix + "_WINDOW_SECS"}

problems = []
for name in sorted(documented - chart - not_for_pods):
    problems.append(f"{name}: in README.md's configuration table, but the chart has no place for it")
for name in sorted(chart - documented):
    problems.append(f"{name}: accepted by the chart, but not in README.md's configuration table")
for name in sorted(code - documented - not_for_pods):
    problems.append(f"{name}: read by the code, but not in README.md's configuration table")
for name in sorted(documented - code - not_for_pods):
    problems.append(f"{name}: in README.md's configuration table, but no config.rs reads it")
for component in everyone:
    for name in sorted(props[component]["properties"]["env"]["properties"]):
        if name in used_by and component not in used_by[name]:
            problems.append(f"{name}: accepted in {component}.env, but README.md says only "
                            f"{', '.join(sorted(used_by[name]))} read it")
for problem in problems:
    print("env names:", problem)
if problems:
    sys.exit(1)
print(f"ok   {len(documented)} variables: README.md's table, the code and the chart agree")
