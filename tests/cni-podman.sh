#!/bin/bash
# podman, a real libcni client, runs two containers on a weft network inside
# a node namespace (lab.md's recipe: nsenter --net, CNI backend, runc,
# cgroupfs, a busybox root filesystem); they reach each other; `podman rm`
# releases their addresses, links, routes and Endpoint records.
# Usage: cni-podman.sh WEFTD WEFT WEFT_IPAM WEFTCTL
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/common.sh"
. "$here/lib/cni.sh"
command -v podman >/dev/null || { echo "skipped: podman not installed"; exit 77; }
[ -x /bin/busybox ] || { echo "skipped: busybox-static not installed"; exit 77; }

make_ns node1
apply_pool pool1 10.78.0.0/24 28
start_weftd node1 "$T/run" || { fail "weftd start"; finish; }

# A hermetic podman: its own storage, run root, CNI config dir and plugin dir.
mkdir -p "$T/net.d" "$T/root" "$T/runroot" "$T/rootfs/bin" "$T/rootfs/proc" "$T/rootfs/sys" \
	"$T/rootfs/dev" "$T/rootfs/etc" "$T/rootfs/tmp"
cp /bin/busybox "$T/rootfs/bin/"
for c in sh sleep ping ip nc cat; do ln -sf busybox "$T/rootfs/bin/$c"; done
cat >"$T/net.d/weftnet.conflist" <<EOT
{"cniVersion": "1.0.0", "name": "weftnet",
 "plugins": [{"type": "weft", "weftd_socket": "$T/run/weftd.sock"}]}
EOT
cat >"$T/containers.conf" <<EOT
[network]
network_backend = "cni"
cni_plugin_dirs = ["$CNI_DIR"]
network_config_dir = "$T/net.d"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
EOT
export CONTAINERS_CONF=$T/containers.conf
pm() {
	nsenter --net="/run/netns/${WC}node1" podman --root "$T/root" --runroot "$T/runroot" \
		--network-backend cni --runtime runc --cgroup-manager=cgroupfs "$@"
}
# Containers go before the namespace and the store; umount what podman left.
at_exit "pm rm -f -a -t 0 >/dev/null 2>&1; mount | awk '{print \$3}' | grep '^$T/' | sort -r | xargs -r -n1 umount -l 2>/dev/null"

run_ctr() {
	pm run -d --name "$1" --network weftnet --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
		--rootfs "$T/rootfs" /bin/sleep 600
}
check "podman run c1 on the weft network" run_ctr c1
check "podman run c2 on the weft network" run_ctr c2
ip1=$(pm inspect c1 --format '{{.NetworkSettings.Networks.weftnet.IPAddress}}' 2>/dev/null)
ip2=$(pm inspect c2 --format '{{.NetworkSettings.Networks.weftnet.IPAddress}}' 2>/dev/null)
echo "c1=$ip1 c2=$ip2"
check "addresses from the pool, distinct" sh -c "case '$ip1' in 10.78.0.*) ;; *) exit 1;; esac; case '$ip2' in 10.78.0.*) ;; *) exit 1;; esac; [ '$ip1' != '$ip2' ]"
check "c1 has its /32 on eth0" sh -c "nsenter --net=/run/netns/${WC}node1 podman --root '$T/root' --runroot '$T/runroot' exec c1 ip -4 addr show eth0 | grep -q 'inet $ip1/32'"
check "c1 pings c2" pm exec c1 ping -c2 -W2 "$ip2"
check "c2 pings c1" pm exec c2 ping -c2 -W2 "$ip1"
# TCP: busybox nc listens in c2 (restarted after each connection), c1
# connects and sends a line; retried briefly since the listener may not be
# up yet on a loaded machine.
pm exec -d c2 sh -c "while true; do nc -l -p 7000 >> /tmp/got; done" >/dev/null 2>&1
tcp_ok() {
	local i
	for i in $(seq 20); do
		echo hello-weft | pm exec -i c1 nc -w 2 "$ip2" 7000 >/dev/null 2>&1
		pm exec c2 cat /tmp/got 2>/dev/null | grep -q hello-weft && return 0
		sleep 0.25
	done
	return 1
}
check "c1 -> c2 TCP, line received" tcp_ok
check "two Endpoint records" sh -c "test \"\$('$WEFTCTL' --store '$S' get endpoints -o json | jq '.items | length')\" = 2"
check "two weft host veths" sh -c "test \"\$(ip -n ${WC}node1 -o link show | grep -c ': wft')\" = 2"

check "podman rm -f c1 c2" pm rm -f -t 0 c1 c2
check "addresses released" sh -c "test \"\$('$WEFTCTL' --store '$S' ipam show -o json | jq '[.pools[].used] | add')\" = 0"
check "ipam check clean" "$WEFTCTL" --store "$S" ipam check --grace 0
check "no Endpoint records" sh -c "test \"\$('$WEFTCTL' --store '$S' get endpoints -o json | jq '.items | length')\" = 0"
check "no weft links or routes left (within 3 s)" within 3 sh -c "test -z \"\$(ip -n ${WC}node1 -o link show | grep ': wf')\" && test -z \"\$(ip -n ${WC}node1 route show proto 81)\""
finish
