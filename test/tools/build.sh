#!/usr/bin/env bash
# Builds the programs warren's tests run as real local processes (etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler, kwok, the
# sealed-secrets controller, Flux's source-controller and
# kustomize-controller, controller-gen, and for real nodes kubelet,
# kube-proxy, containerd, CoreDNS, agnhost and kube-router) from the Go
# module proxy into
# a versioned cache outside the repository. Each wrapper module has its own
# store keyed by its go.mod and go.sum; a second run with the same modules
# rebuilds nothing, and a changed module rebuilds only its own tools. The
# packages real nodes need from the distribution (runc, CNI plugins,
# iptables) are host-packages.sh's job.
#
#   build.sh            build what is missing, print progress, then the directory
#   build.sh --dir      print the cache directory only (no build)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# name | wrapper module dir | package | ldflags
tools=(
  "etcd|etcd|go.etcd.io/etcd/server/v3|"
  "kube-apiserver|kubernetes|k8s.io/kubernetes/cmd/kube-apiserver|k8s"
  "kube-controller-manager|kubernetes|k8s.io/kubernetes/cmd/kube-controller-manager|k8s"
  "kube-scheduler|kubernetes|k8s.io/kubernetes/cmd/kube-scheduler|k8s"
  # A real node: kubelet and kube-proxy (they share most packages with
  # kube-apiserver), kubectl for the stories a user would type, and the e2e
  # test image agnhost as the tenant workload.
  "kubelet|kubernetes|k8s.io/kubernetes/cmd/kubelet|k8s"
  "kube-proxy|kubernetes|k8s.io/kubernetes/cmd/kube-proxy|k8s"
  "kubectl|kubernetes|k8s.io/kubernetes/cmd/kubectl|k8s"
  "agnhost|kubernetes|k8s.io/kubernetes/test/images/agnhost|"
  # containerd 2.x (the kubelet warns that 1.x support ends), its runc shim
  # and ctr to import images; runc itself comes from the distribution.
  "containerd|containerd|github.com/containerd/containerd/v2/cmd/containerd|"
  "containerd-shim-runc-v2|containerd|github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2|"
  "ctr|containerd|github.com/containerd/containerd/v2/cmd/ctr|"
  "coredns|coredns|github.com/coredns/coredns|"
  # kube-router's network-policy controller alone enforces NetworkPolicies
  # on real nodes that ask for it: a tool of the test host only.
  "kube-router|kube-router|github.com/cloudnativelabs/kube-router/v2/cmd/kube-router|"
  "kwok|kwok|sigs.k8s.io/kwok/cmd/kwok|"
)
if [ -d "$here/controller-gen" ]; then tools+=("controller-gen|controller-gen|sigs.k8s.io/controller-tools/cmd/controller-gen|"); fi
if [ -d "$here/sealed-secrets" ]; then tools+=("sealed-secrets-controller|sealed-secrets|github.com/bitnami-labs/sealed-secrets/cmd/controller|"); fi
# Flux's source-controller and kustomize-controller, for the stories where
# the platform's own GitOps tool runs beside warren (their own module, so a
# Flux bump rebuilds only them).
if [ -d "$here/flux" ]; then
  tools+=("source-controller|flux|github.com/fluxcd/source-controller|"
    "kustomize-controller|flux|github.com/fluxcd/kustomize-controller|")
fi

# Files tests read from a Go module's zip that nothing here builds: Argo
# CD's own CRDs. Its controllers cannot be built with this toolchain
# (v3.6 needs Go 1.27; v3.5.7, the newest on Go 1.26, needs a gitops-engine
# version the module proxy does not serve; see docs/gitops.md), so the
# examples are checked against these CRDs with server-side dry runs. The
# zip's hash is pinned here as go.sum would pin it.
# output file | module@version | its h1: hash | files in the module
module_files=(
  "argocd-crds.yaml|github.com/argoproj/argo-cd/v3@v3.5.7|h1:Xm1BF+I5OgDKUG3SDK49vn2/Y5AMyaNVko+/JT08gj0=|manifests/crds/application-crd.yaml manifests/crds/appproject-crd.yaml"
)

# Bump when a change to this script changes what ends up in the cache.
recipe=3
base="${XDG_CACHE_HOME:-$HOME/.cache}/warren/tools"
# Each wrapper module builds into a store directory keyed by the recipe and
# that module's go.mod and go.sum only, so a new or bumped module rebuilds
# its own tools and nothing else.
module_key() { # wrapper dir
  (cd "$here/$1" && { echo "recipe $recipe"; cat go.mod go.sum 2>/dev/null; } | sha256sum | cut -c1-12)
}
modules=$(for t in "${tools[@]}"; do IFS='|' read -r _ mod _ _ <<<"$t"; echo "$mod"; done | sort -u)
declare -A store
for mod in $modules; do store[$mod]="$base/modules/$mod-$(module_key "$mod")"; done
files_store="$base/modules/files-$(printf '%s\n' "recipe $recipe" "${module_files[@]}" | sha256sum | cut -c1-12)"
# The directory tests read holds links into the stores; its name is keyed by
# every module's key, so one set of modules always names one directory.
key=$( (for mod in $modules; do basename "${store[$mod]}"; done; basename "$files_store") | sha256sum | cut -c1-12)
dir="${WARREN_TOOLS_DIR:-$base/$key}"

if [ "${1:-}" = "--dir" ]; then
  echo "$dir"
  exit 0
fi

module_version() { # wrapper dir, module path
  (cd "$here/$1" && go list -m -f '{{.Version}}' "$2")
}

ldflags_for() {
  case "$1" in
  k8s)
    local v
    v=$(module_version kubernetes k8s.io/kubernetes)
    local minor=${v#v1.}
    minor=${minor%%.*}
    local pkg
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      printf -- '-X %s.gitVersion=%s -X %s.gitMajor=1 -X %s.gitMinor=%s -X %s.gitTreeState=clean ' \
        "$pkg" "$v" "$pkg" "$pkg" "$minor" "$pkg"
    done
    ;;
  esac
}

# kwok refuses to start without stages; use the ones its own module ships:
# node initialize, node heartbeat with lease, pod ready, complete and delete,
# and volume provisioning, binding and deletion (for PVCs of the kwok-volume
# StorageClass, which the local planes make their default). Its CRDs for the
# kubelet API it simulates (logs, attach, exec, port-forward) go beside them:
# the planes install them so tests say per pod which file is its log, where
# exec runs a local command and which local listener a port forward reaches.
copy_kwok_stages() { # into dir
  local src
  src=$(cd "$here/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)/kustomize/stage
  local f out="$1/kwok-stages.yaml.tmp"
  : >"$out"
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
    pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml \
    volume/fast/pvc-provision.yaml volume/fast/pv-bind.yaml volume/fast/pvc-delete.yaml volume/fast/pv-delete.yaml; do
    printf -- '---\n' >>"$out"
    cat "$src/$f" >>"$out"
  done
  cp "$src/volume/fast/storage-class.yaml" "$1/kwok-storage-class.yaml"
  mv "$out" "$1/kwok-stages.yaml"
  local crds="$src/../crd/bases" kind
  out="$1/kwok-crds.yaml.tmp"
  : >"$out"
  for kind in logs clusterlogs attaches clusterattaches execs clusterexecs portforwards clusterportforwards; do
    printf -- '---\n' >>"$out"
    cat "$crds/kwok.x-k8s.io_$kind.yaml" >>"$out"
  done
  chmod 0644 "$out"
  mv "$out" "$1/kwok-crds.yaml"
}

# The sealed-secrets controller does not install its CRD; tests apply the one
# its own module ships, kept beside the binary so it always matches it.
copy_sealed_secrets_crd() { # into dir
  local src
  src=$(cd "$here/sealed-secrets" && go list -m -f '{{.Dir}}' github.com/bitnami-labs/sealed-secrets)/helm/sealed-secrets/crds/bitnami.com_sealedsecrets.yaml
  cp "$src" "$1/sealed-secrets-crd.yaml.tmp"
  chmod 0644 "$1/sealed-secrets-crd.yaml.tmp"
  mv "$1/sealed-secrets-crd.yaml.tmp" "$1/sealed-secrets-crd.yaml"
}

# Flux's controllers do not install their CRDs either; each one's CRDs come
# from config/crd/bases of the module it is built from, beside its binary.
copy_flux_crds() { # controller name, into dir
  local src f out="$2/$1-crds.yaml.tmp"
  src=$(cd "$here/flux" && go list -m -f '{{.Dir}}' "github.com/fluxcd/$1")/config/crd/bases
  : >"$out"
  for f in "$src"/*.yaml; do
    printf -- '---\n' >>"$out"
    cat "$f" >>"$out"
  done
  chmod 0644 "$out"
  mv "$out" "$2/$1-crds.yaml"
}

# The files besides the binary that a tool's users read.
extras_of() {
  case "$1" in
  kwok) echo kwok-stages.yaml kwok-storage-class.yaml kwok-crds.yaml ;;
  sealed-secrets-controller) echo sealed-secrets-crd.yaml ;;
  source-controller | kustomize-controller) echo "$1-crds.yaml" ;;
  esac
}

copy_extras() { # tool name, store dir
  case "$1" in
  kwok) copy_kwok_stages "$2" ;;
  sealed-secrets-controller) copy_sealed_secrets_crd "$2" ;;
  source-controller | kustomize-controller) copy_flux_crds "$1" "$2" ;;
  esac
}

missing_tools() {
  local t name mod f
  for t in "${tools[@]}"; do
    IFS='|' read -r name mod _ _ <<<"$t"
    if [ ! -x "${store[$mod]}/$name" ]; then
      echo "$t"
      continue
    fi
    for f in $(extras_of "$name"); do
      if [ ! -f "${store[$mod]}/$f" ]; then
        echo "$t"
        break
      fi
    done
  done
}

# Copies each module_files entry out of its module's zip (downloaded and
# checked against the pinned hash) into the files store.
fetch_module_files() {
  local line out modver sum files tmp json got src f
  for line in "${module_files[@]}"; do
    IFS='|' read -r out modver sum files <<<"$line"
    [ -f "$files_store/$out" ] && continue
    echo "fetching $out from $modver ..." >&2
    tmp=$(mktemp -d)
    json=$(cd "$tmp" && go mod download -json "$modver")
    rmdir "$tmp"
    got=$(sed -n 's/^\t"Sum": "\(.*\)",$/\1/p' <<<"$json")
    if [ "$got" != "$sum" ]; then
      echo "$modver has hash $got, not the pinned $sum" >&2
      return 1
    fi
    src=$(sed -n 's/^\t"Dir": "\(.*\)",$/\1/p' <<<"$json")
    mkdir -p "$files_store"
    : >"$files_store/$out.tmp"
    for f in $files; do
      printf -- '---\n' >>"$files_store/$out.tmp"
      cat "$src/$f" >>"$files_store/$out.tmp"
    done
    chmod 0644 "$files_store/$out.tmp"
    mv "$files_store/$out.tmp" "$files_store/$out"
  done
}

missing_files() {
  local line out
  for line in "${module_files[@]}"; do
    IFS='|' read -r out _ <<<"$line"
    [ -f "$files_store/$out" ] || echo "$out"
  done
}

# Points the directory tests read at every tool and file in the stores.
link_tools() {
  local t name mod f line
  mkdir -p "$dir"
  for line in "${module_files[@]}"; do
    IFS='|' read -r f _ <<<"$line"
    [ "$(readlink "$dir/$f" 2>/dev/null)" = "$files_store/$f" ] || ln -sfn "$files_store/$f" "$dir/$f"
  done
  for t in "${tools[@]}"; do
    IFS='|' read -r name mod _ _ <<<"$t"
    for f in "$name" $(extras_of "$name"); do
      [ "$(readlink "$dir/$f" 2>/dev/null)" = "${store[$mod]}/$f" ] || ln -sfn "${store[$mod]}/$f" "$dir/$f"
    done
  done
}

build_one() { # tool line, position, count
  local name mod pkg flags start beat status=0
  IFS='|' read -r name mod pkg flags <<<"$1"
  local out="${store[$mod]}"
  mkdir -p "$out"
  if [ -x "$out/$name" ]; then
    copy_extras "$name" "$out"
    return 0
  fi
  start=$(date +%s)
  echo "[$2/$3] $name ($pkg) ..." >&2
  # Print a heartbeat while the compiler works, so a person sees progress.
  (while sleep 30; do echo "  ... still building $name ($(($(date +%s) - start))s)" >&2; done) &
  beat=$!
  (cd "$here/$mod" && CGO_ENABLED=0 go build -trimpath -ldflags "$(ldflags_for "$flags")" -o "$out/$name.tmp" "$pkg") || status=$?
  kill "$beat" 2>/dev/null || true
  wait "$beat" 2>/dev/null || true
  if [ $status -ne 0 ]; then
    echo "building $name failed (exit $status)" >&2
    rm -f "$out/$name.tmp"
    return $status
  fi
  mv "$out/$name.tmp" "$out/$name"
  copy_extras "$name" "$out"
  echo "  done in $(($(date +%s) - start))s" >&2
}

mapfile -t missing < <(missing_tools; missing_files)
if [ ${#missing[@]} -gt 0 ]; then
  mkdir -p "$base"
  # One build at a time per machine: a second `make tools` waits for the
  # first, then finds most of what it needs already built.
  exec 9>"$base/.lock"
  if ! flock -n 9; then
    echo "another build of the tools is running; waiting for it" >&2
    flock 9
  fi
  fetch_module_files
  mapfile -t missing < <(missing_tools)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "building ${#missing[@]} tool(s) into $base/modules" >&2
  echo "(a cold build takes several minutes on 2 cores; progress follows)" >&2
  i=0
  for t in "${missing[@]}"; do
    i=$((i + 1))
    build_one "$t" "$i" "${#missing[@]}"
  done
fi
link_tools
[ ${#missing[@]} -gt 0 ] || echo "tools up to date in $dir" >&2
echo "$dir"
