# Shared settings of the Argo Workflows fixture scripts (sourced, not run).
# shellcheck shell=bash
argo_scripts="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$argo_scripts/../../tests/cluster/lib.sh"   # log, die, the cluster's paths and admin kubeconfig

argo_version="$(awk '$1 == "require" && $2 == "github.com/argoproj/argo-workflows/v4" {print $3}' \
  "$argo_scripts/module/go.mod")"
argo_namespace="kdag-bench"                 # everything the fixture makes in the cluster, but the CRDs, is here
argo_controller_account="argo-workflow-controller"
argo_workflow_account="argo-workflow"       # workflow pods run as this ServiceAccount
argo_executor_image="localhost/argoexec:$argo_version"
argo_field_manager="kdag-bench-argo"
# The controller's loopback-only ports (bench/argo/build binds both to 127.0.0.1): metrics in the configmap,
# /healthz fixed at 6060 by argo.
argo_metrics_port="${KDAG_ARGO_METRICS_PORT:-19090}"
argo_healthz_port=6060
# The host-run controller's kubeconfig, PID and log.
argo_run_dir="${KDAG_ARGO_RUN_DIR:-$cache_root/argo/run}"
argo_pid_file="$argo_run_dir/workflow-controller.pid"
argo_log_file="$argo_run_dir/workflow-controller.log"
argo_kubeconfig="$argo_run_dir/workflow-controller.kubeconfig"

# The admin's kubeconfig: $KUBECONFIG when set, else the test cluster's.
export KUBECONFIG="${KUBECONFIG:-$admin_kubeconfig}"

# argo's source as the module proxy serves it (manifests/ for the CRDs and RBAC); downloads it when missing.
argo_source_dir() {
  local dir
  dir="$(cd "$argo_scripts/module" && go mod download -json "github.com/argoproj/argo-workflows/v4@$argo_version" \
    | awk -F'"' '$2 == "Dir" {print $4; exit}')"
  [[ -d "$dir/manifests" ]] || die "no manifests/ in argo's module source '$dir'"
  echo "$dir"
}

# argo_controller_pid: the recorded controller PID if that process still runs workflow-controller.
argo_controller_pid() {
  local pid
  [[ -f "$argo_pid_file" ]] || return 1
  pid="$(cat "$argo_pid_file")"
  [[ "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" == *"/workflow-controller "* ]] || return 1
  echo "$pid"
}
