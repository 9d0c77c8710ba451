#!/usr/bin/env bash
# A private LAN of network namespaces (sourced by tests/system/scaleout and
# bench/scaleout): a bridge in namespace PREFIX-lan and, per machine, a
# namespace PREFIX-NAME whose eth0 (a veth into that bridge) has a static
# address. Nothing touches the host's own network; net_down removes it all.

# net_up PREFIX NAME=ADDR...: builds the LAN (addresses are /24).
net_up() {
    local prefix=$1 spec name addr
    shift
    net_down "$prefix"
    ip netns add "$prefix-lan"
    ip -n "$prefix-lan" link add br0 type bridge
    ip -n "$prefix-lan" link set br0 up
    for spec in "$@"; do
        name=${spec%%=*} addr=${spec#*=}
        ip netns add "$prefix-$name"
        ip -n "$prefix-$name" link set lo up
        # One end is the machine's eth0, the other a port of the bridge.
        ip link add "$prefix-$name" type veth peer name eth0 netns "$prefix-$name"
        ip link set "$prefix-$name" netns "$prefix-lan"
        ip -n "$prefix-lan" link set "$prefix-$name" master br0 up
        ip -n "$prefix-$name" addr add "$addr/24" dev eth0
        ip -n "$prefix-$name" link set eth0 up
    done
}

# net_cable PREFIX NAME up|down: plugs a machine's cable in or pulls it (its
# bridge port): packets to it are then lost, as with a machine switched off.
net_cable() {
    ip -n "$1-lan" link set "$1-$2" "$3"
}

# net_down PREFIX: removes every namespace of the LAN (their veths go with them).
net_down() {
    local ns
    for ns in $(ip netns list | awk '{print $1}'); do
        if [[ $ns == "$1"-* ]]; then
            ip netns del "$ns"
        fi
    done
}
