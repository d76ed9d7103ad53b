# Shared settings of the test cluster scripts (sourced, not run).
# shellcheck shell=bash
cluster_scripts="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$cluster_scripts/../.." && pwd)"
cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/kdag"
state_dir="${KDAG_CLUSTER_DIR:-$cache_root/cluster}"
pki_dir="$state_dir/pki"
log_dir="$state_dir/logs"
pid_dir="$state_dir/pids"
containerd_dir="$state_dir/containerd"
containerd_socket="$containerd_dir/containerd.sock"
kubelet_dir="$state_dir/kubelet"
etcd_dir="$state_dir/etcd"
cni_dir="$state_dir/cni"
image_dir="$cache_root/images"
admin_kubeconfig="$state_dir/admin.kubeconfig"
kwok_dir="$state_dir/kwok"      # kwok's config (KwokConfiguration + Stages) and work directory, `up --kwok`
audit_policy="$state_dir/audit-policy.yaml"

node_name="kdag-node"
bridge="kdag0"
pod_cidr="10.244.0.0/24"
bridge_ip="10.244.0.1"          # the node's address and the API server's advertised address
service_cidr="10.96.0.0/16"
kubernetes_service_ip="10.96.0.1"
apiserver_port="${KDAG_APISERVER_PORT:-6443}"
etcd_client_port=2379
etcd_peer_port=2380
guard_table="kdag_guard"        # nftables table that keeps pod traffic on this machine
# Fake nodes (`up --kwok`): kwok manages the nodes annotated kwok.x-k8s.io/node=fake; a NoSchedule taint of the
# same key and value keeps every pod that does not tolerate it on the real node; pods select them by label.
kwok_node_prefix="kwok-node-"
kwok_mark_key="kwok.x-k8s.io/node"
kwok_mark_value="fake"
kwok_label_key="type"
kwok_label_value="kwok"
# The audit log records only this group's requests: the ServiceAccounts of the namespace a benchmark puts
# both the kdag controller and Argo's controller in.
audit_user_group="system:serviceaccounts:kdag-bench"

pause_image="localhost/kdag-pause:3.10"
base_image="localhost/kdag-base:bookworm"
runner_image="localhost/kdag-runner:dev"
controller_image="localhost/kdag-controller:dev"
# Debian's busybox-static under the public name, so examples with `image: busybox:1.35` run unchanged here.
shell_image="docker.io/library/busybox:1.35"

# buildah keeps its own store, apart from any other user of containers/storage on the machine.
buildah_dir="$cache_root/buildah"
export CONTAINERS_STORAGE_CONF="$buildah_dir/storage.conf"
export BUILDAH_ISOLATION=chroot

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
die() { echo "error: $*" >&2; exit 1; }

ctr_k8s() { ctr --address "$containerd_socket" --namespace k8s.io "$@"; }

# Installs the Debian packages the cluster needs, once: the test suite must run on a fresh machine.
ensure_packages() {
  local wanted=(containerd runc buildah containernetworking-plugins debootstrap etcd-server iptables nftables
                conntrack ipset iproute2 util-linux kmod openssl ca-certificates curl)
  local missing=() package
  for package in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep "install ok installed" >/dev/null || missing+=("$package")
  done
  if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    (export DEBIAN_FRONTEND=noninteractive
     apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}") >>"$cache_root/apt.log" 2>&1 \
      || die "apt-get install ${missing[*]} failed; see $cache_root/apt.log"
  fi
}

# containerd with its own root, state and socket under the state directory, beside any other containerd.
write_containerd_config() {
  mkdir -p "$containerd_dir"
cat >"$containerd_dir/config.toml" <<TOML
  version = 2
  root = "$containerd_dir/root"
  state = "$containerd_dir/state"
  [grpc]
    address = "$containerd_socket"
  [ttrpc]
    address = "$containerd_socket.ttrpc"
  [debug]
    address = ""
  [metrics]
    address = ""
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "$pause_image"
    enable_cdi = false
    # This machine withholds CAP_SYS_RESOURCE even from root, so no process may lower its oom_score_adj; the
    # kubelet asks -998 for every pod sandbox and runc init then dies ("can't get final child's PID from
    # pipe: EOF"). Clamp requested scores to containerd's own, as for rootless containerd.
    restrict_oom_score_adj = true
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          SystemdCgroup = false
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "$cni_dir/net.d"
TOML
}

# pid_of NAME: the PID recorded for daemon NAME if that process still runs NAME (a PID may be reused).
pid_of() {
  local pid_file="$pid_dir/$1.pid" pid
  [[ -f "$pid_file" ]] || return 1
  pid="$(cat "$pid_file")"
  [[ "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" == *"$1 "* ]] || return 1
  echo "$pid"
}

# stop_daemon NAME: SIGTERM, then SIGKILL after a grace period, to the process whose PID up recorded.
stop_daemon() {
  local pid_file="$pid_dir/$1.pid" pid
  if pid="$(pid_of "$1")"; then
    log "stopping $1 ($pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$pid_file"
}
