#!/usr/bin/env bash
# Installs what tests/it/deploy_tools.rs runs on deploy/ (README "Schema validation"), each only when missing:
#   kubectl             `kubectl kustomize deploy/kubernetes` (Debian: kubernetes-client, when no kubectl is there)
#   promtool            `promtool check rules` on the PrometheusRule's groups (Debian: prometheus)
#   kubernetes-validate Kubernetes' own OpenAPI schemas, from PyPI, in a venv at target/k8s-tools/venv
#   deploy/validate/    the Prometheus Operator schemas (@kubernetes-models/prometheus-operator) and tsc, from npm,
#                       at the versions deploy/validate/package-lock.json pins (node and npm from Debian if missing)
# .ci/run calls it, so CI always validates; run it once locally to do the same (the tests skip without the tools).
set -euo pipefail
cd "$(dirname "$0")/.."

KUBERNETES_VALIDATE_VERSION=1.37.0
VENV=target/k8s-tools/venv

apt_updated=
apt_install() {
  echo "k8s-tools: apt-get install $*"
  export DEBIAN_FRONTEND=noninteractive
  if [ -z "$apt_updated" ]; then
    apt-get update -qq
    apt_updated=1
  fi
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

command -v kubectl >/dev/null 2>&1 || apt_install kubernetes-client
command -v promtool >/dev/null 2>&1 || apt_install prometheus
command -v python3 >/dev/null 2>&1 || apt_install python3
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || apt_install python3-venv
command -v node >/dev/null 2>&1 || apt_install nodejs
command -v npm >/dev/null 2>&1 || apt_install npm

if ! "$VENV/bin/kubernetes-validate" --version 2>/dev/null | grep -q "$KUBERNETES_VALIDATE_VERSION"; then
  echo "k8s-tools: kubernetes-validate $KUBERNETES_VALIDATE_VERSION into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
fi

if ! (cd deploy/validate && npm ls --silent >/dev/null 2>&1); then
  echo "k8s-tools: npm ci in deploy/validate"
  # The packages declare node >= 22; they run on Debian's and this machine's node 20 (the tests prove it).
  npm ci --prefix deploy/validate --no-audit --no-fund --loglevel=error --engine-strict=false >/dev/null
fi

echo "k8s-tools: kubectl $(kubectl version --client 2>/dev/null | head -1 | sed 's/.*: //'), \
$(promtool --version 2>&1 | head -1 | cut -d' ' -f1-3), \
kubernetes-validate $("$VENV/bin/kubernetes-validate" --version), \
$(cd deploy/validate && node -e 'console.log(require("./package-lock.json").packages["node_modules/@kubernetes-models/prometheus-operator"].version)' | sed 's/^/@kubernetes-models\/prometheus-operator /')"
