#!/bin/bash
# Build the test cluster's Go binaries from their Go modules, each once per version, into ~/.cache/k8s:
#   kubernetes-$KVER/  kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy
#   containerd-$CVER/  containerd containerd-shim-runc-v2 ctr   (the kubelet needs CRI v1 + RuntimeConfig:
#                      Debian bookworm's containerd 1.6 is too old for kubelets >= 1.36)
#   coredns-$DVER/     coredns (cluster DNS: A and SRV records for Services, headless ones included)
#   prometheus-$PVER/  prometheus with Kubernetes service discovery (Debian's package is built without it;
#                      only the file, http and kubernetes discoveries are compiled in)
# How: a throw-away main module per project that requires it at that version (Kubernetes' staging modules
# k8s.io/* are replaced by their published v0.X.Y, as k8s.io/kubernetes' own go.mod points them at ./staging).
# Only the Go module proxy is used. GOMODCACHE and GOCACHE live in $CACHE and are shared, so a rebuild
# (another version, FORCE=1) is warm. Builds run under `nice -n 10` with -trimpath, CGO off (static).
# Usage: bash scripts/k8s/build.sh     (cached: exits at once when every binary exists)
# Env: KVER (v1.37.2), CVER (v2.4.2), DVER (v1.15.0), PVER (v0.316.0 = Prometheus 3.16), CACHE (~/.cache/k8s),
#      FORCE=1, GOMAXPROCS (2).
set -euo pipefail
KVER=${KVER:-v1.37.2}; CVER=${CVER:-v2.4.2}; DVER=${DVER:-v1.15.0}; PVER=${PVER:-v0.316.0}
CACHE=${CACHE:-$HOME/.cache/k8s}
KBINS="kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy"
CBINS="containerd containerd-shim-runc-v2 ctr"
KOUT=$CACHE/kubernetes-$KVER; COUT=$CACHE/containerd-$CVER; DOUT=$CACHE/coredns-$DVER; POUT=$CACHE/prometheus-$PVER

missing() {  # missing DIR BIN... -> true if one is not there (or FORCE is set)
  local dir=$1; shift
  [ -n "${FORCE:-}" ] && return 0
  for b in "$@"; do [ -x "$dir/$b" ] || return 0; done
  return 1
}
if ! missing $KOUT $KBINS && ! missing $COUT $CBINS && ! missing $DOUT coredns && ! missing $POUT prometheus; then
  echo "cached: $KOUT $COUT $DOUT $POUT"; exit 0
fi

command -v go >/dev/null || { echo "build.sh: needs Go >= 1.26 (apt-get install golang-1.26 or similar)" >&2; exit 2; }
export GOPATH=$CACHE/gopath GOMODCACHE=$CACHE/gopath/pkg/mod GOCACHE=$CACHE/gocache
export GOTOOLCHAIN=${GOTOOLCHAIN:-auto} CGO_ENABLED=0 GOFLAGS="-mod=mod -trimpath" GOMAXPROCS=${GOMAXPROCS:-2}
mkdir -p $CACHE/src
go version
t_all=$(date +%s)

new_module() {  # new_module NAME -> cd into a fresh main module dir (go.mod written by the caller)
  local dir=$CACHE/src/$1
  mkdir -p $dir && cd $dir && rm -f go.mod
  [ -f main.go ] || printf 'package main\n\nfunc main() {}\n' > main.go
}

build() {  # build OUT LDFLAGS PKG... -> each package's binary (its last path element) into OUT
  local out=$1 ld=$2; shift 2
  mkdir -p $out
  for pkg in "$@"; do
    local t1=$(date +%s) name=${pkg##*/}
    nice -n 10 go build ${TAGS:+-tags $TAGS} -ldflags "$ld" -o $out/$name.tmp $pkg
    mv $out/$name.tmp $out/$name
    echo "built $name: $(( $(date +%s) - t1 ))s ($(du -h $out/$name | cut -f1))"
  done
}

if missing $KOUT $KBINS; then
  new_module kubernetes-$KVER
  KMOD=$(go mod download -json k8s.io/kubernetes@$KVER | python3 -c \
    'import json,sys; d=json.load(sys.stdin); print(d.get("GoMod") or sys.exit(d.get("Error")))')
  {
    echo "module local/kubernetes-build"; echo
    awk '$1=="go"{print; exit}' $KMOD; echo
    awk '/^godebug \(/{b=1} b{print} b&&/^\)/{b=0; next} /^godebug [^(]/{print}' $KMOD; echo
    echo "require k8s.io/kubernetes $KVER"; echo
    echo "replace ("
    sed -n 's#^[[:space:]]*\(k8s\.io/[A-Za-z0-9._-]*\)[[:space:]]*=>[[:space:]]*\./staging/.*#\t\1 => \1 v0.'${KVER#v1.}'#p' $KMOD
    echo ")"
  } > go.mod
  t0=$(date +%s)
  PKGS=$(for b in $KBINS; do printf "k8s.io/kubernetes/cmd/%s " $b; done)
  go list -deps $PKGS >/dev/null
  echo "kubernetes $KVER modules: $(( $(date +%s) - t0 ))s"
  LD="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    LD="$LD -X $p.gitVersion=$KVER -X $p.gitMajor=1 -X $p.gitMinor=$(echo $KVER | cut -d. -f2)"
    LD="$LD -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  build $KOUT "$LD" $PKGS
fi

if missing $COUT $CBINS; then
  new_module containerd-$CVER
  printf 'module local/containerd-build\n\ngo 1.26\n\nrequire github.com/containerd/containerd/v2 %s\n' $CVER > go.mod
  P=github.com/containerd/containerd/v2
  go list -deps $P/cmd/containerd $P/cmd/containerd-shim-runc-v2 $P/cmd/ctr >/dev/null
  LD="-s -w -X $P/version.Version=$CVER -X $P/version.Revision=module"
  build $COUT "$LD" $P/cmd/containerd $P/cmd/containerd-shim-runc-v2 $P/cmd/ctr
fi

if missing $DOUT coredns; then
  new_module coredns-$DVER
  printf 'module local/coredns-build\n\ngo 1.26\n\nrequire github.com/coredns/coredns %s\n' $DVER > go.mod
  go list -deps github.com/coredns/coredns >/dev/null
  build $DOUT "-s -w" github.com/coredns/coredns
fi

if missing $POUT prometheus; then
  new_module prometheus-$PVER
  printf 'module local/prometheus-build\n\ngo 1.26\n\nrequire github.com/prometheus/prometheus %s\n' $PVER > go.mod
  TAGS=remove_all_sd,enable_kubernetes_sd
  go list -tags $TAGS -deps github.com/prometheus/prometheus/cmd/prometheus >/dev/null
  P=github.com/prometheus/common/version
  TAGS=$TAGS build $POUT "-s -w -X $P.Version=3.${PVER#v0.3} -X $P.Branch=module" github.com/prometheus/prometheus/cmd/prometheus
fi

echo "build.sh total: $(( $(date +%s) - t_all ))s; module cache $(du -sh $GOMODCACHE | cut -f1), build cache $(du -sh $GOCACHE | cut -f1)"
$KOUT/kubelet --version; $COUT/containerd --version; $DOUT/coredns -version | head -1; $POUT/prometheus --version | head -1
