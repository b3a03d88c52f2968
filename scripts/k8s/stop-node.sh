#!/bin/bash
# Stop what start-node.sh started, each process by its recorded PID, and undo its host changes: pods are
# torn down through the kubelet first (so CNI releases addresses, veths and iptables rules), then leftover
# containers, KUBE-*/CNI-* iptables chains, the bridge, mounts, kubepods cgroups, the lo address and
# ip_forward. Idempotent: safe after a failed or partial start. Imported images are kept (in
# /var/lib/cacheproxy-containerd) unless PURGE=1.
D=${D:-/tmp/cacheproxy-k8s}
NODE_IP=${NODE_IP:-172.30.254.1}; BRIDGE=${BRIDGE:-cpx0}; CNI_DIR=${CNI_DIR:-/etc/cni/cacheproxy.d}
KVER=${KVER:-v1.37.2}; CVER=${CVER:-v2.4.2}; CACHE=${CACHE:-$HOME/.cache/k8s}
KBIN=$CACHE/kubernetes-$KVER; CBIN=$CACHE/containerd-$CVER
SOCK=/run/cacheproxy-containerd/containerd.sock; KROOT=/var/lib/cacheproxy-kubelet
H=$(cd "$(dirname "$0")" && pwd)
PY=${PY:-$(cd "$H/../.." && pwd)/.venv/bin/python}
KUBECTL=${KUBECTL:-$(dirname "$PY")/kubectl}; [ -x "$KUBECTL" ] || KUBECTL=kubectl
alive() { [ -f $D/$1.pid ] && kill -0 "$(cat $D/$1.pid)" 2>/dev/null; }
stop() {  # stop NAME [HALF_SECONDS]: SIGTERM, wait, SIGKILL
  [ -f $D/$1.pid ] || return 0
  local p; p=$(cat $D/$1.pid); rm -f $D/$1.pid
  kill $p 2>/dev/null || return 0
  for _ in $(seq 1 ${2:-30}); do kill -0 $p 2>/dev/null || break; sleep 0.5; done
  if kill -0 $p 2>/dev/null; then kill -9 $p 2>/dev/null; echo "SIGKILLed $1 ($p)"; else echo "stopped $1 ($p)"; fi
}
stop kcm; stop scheduler
# pods down through the kubelet while the API server and kubelet still run
if alive kubelet && alive kas; then
  $KUBECTL --kubeconfig=$D/admin.kubeconfig delete pods --all --all-namespaces --grace-period=1 \
    --wait=true --timeout=60s >/dev/null 2>&1 || echo "warning: pod teardown incomplete"
  for _ in $(seq 1 60); do  # the kubelet stops sandboxes (CNI DEL) after the API objects are gone
    [ -z "$($CBIN/ctr --address $SOCK -n k8s.io tasks ls -q 2>/dev/null | head -1)" ] && break; sleep 0.5
  done
fi
stop proxy; stop kubelet; stop coredns; stop kas; stop etcd
if alive containerd; then
  CTR="$CBIN/ctr --address $SOCK -n k8s.io"
  for t in $($CTR tasks ls -q 2>/dev/null); do $CTR tasks kill -s SIGKILL $t >/dev/null 2>&1; done
  for _ in $(seq 1 20); do [ -z "$($CTR tasks ls -q 2>/dev/null | head -1)" ] && break; sleep 0.25; done
  for t in $($CTR tasks ls -q 2>/dev/null); do $CTR tasks rm -f $t >/dev/null 2>&1; done
  for c in $($CTR containers ls -q 2>/dev/null); do $CTR containers rm $c >/dev/null 2>&1; done
fi
stop containerd
[ -x $KBIN/kube-proxy ] && $KBIN/kube-proxy --cleanup >/dev/null 2>&1
# KUBE-* chains are this node's (one kube-proxy per machine); of the CNI-* ones only those made for our
# network (podman's CNI networks use CNI-* chains too)
for ipt in iptables ip6tables; do for t in filter nat mangle; do
  ours=$($ipt-save -t $t 2>/dev/null | grep -E '^-A .*cacheproxy-pods' | grep -oE -- '-j CNI-[^ ]+' | cut -c4- | sort -u)
  $ipt-save -t $t 2>/dev/null | grep -E '^-A [A-Z]+ .*(-j KUBE-|cacheproxy-pods)' | grep -vE '^-A KUBE-' | sed 's/^-A/-D/' \
    | while read -r r; do eval $ipt -t $t $r 2>/dev/null; done
  CH="$($ipt-save -t $t 2>/dev/null | grep -oE '^:KUBE-[^ ]+' | tr -d :) $ours"
  for c in $CH; do $ipt -t $t -F $c 2>/dev/null; done; for c in $CH; do $ipt -t $t -X $c 2>/dev/null; done
done; done
findmnt -rno TARGET | grep -E "^($KROOT|/run/cacheproxy-containerd|/var/lib/cacheproxy-containerd/.*/rootfs)(/|\$)" \
  | sort -r | xargs -r -n1 umount -l 2>/dev/null
ip link del $BRIDGE 2>/dev/null
rm -rf /var/lib/cni/networks/cacheproxy-pods $CNI_DIR
ip addr del $NODE_IP/32 dev lo 2>/dev/null
if [ -f /run/cacheproxy-k8s.sysctl ]; then cat /run/cacheproxy-k8s.sysctl > /proc/sys/net/ipv4/ip_forward; rm -f /run/cacheproxy-k8s.sysctl; fi
for c in /sys/fs/cgroup/*/kubepods; do [ -d $c ] && find $c -depth -type d -exec rmdir {} \; 2>/dev/null; done
rm -rf $KROOT/pods $KROOT/plugins* $KROOT/pod-resources
[ -n "${PURGE:-}" ] && rm -rf /var/lib/cacheproxy-containerd $KROOT
echo "node stopped"
