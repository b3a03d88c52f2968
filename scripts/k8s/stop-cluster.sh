#!/bin/bash
# Stop the test control plane started by start-cluster.sh: kcm, then kube-apiserver, then etcd, each by
# its recorded PID (SIGTERM, up to 15 s, then SIGKILL).
D=${D:-/tmp/kas}
for f in kcm kas etcd; do
  [ -f $D/$f.pid ] || continue; p=$(cat $D/$f.pid); rm -f $D/$f.pid
  kill $p 2>/dev/null || continue
  for i in $(seq 1 30); do kill -0 $p 2>/dev/null || break; sleep 0.5; done
  if kill -0 $p 2>/dev/null; then kill -9 $p 2>/dev/null; echo "SIGKILLed $f ($p)"; else echo "stopped $f ($p)"; fi
done
