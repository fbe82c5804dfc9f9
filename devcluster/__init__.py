"""The throwaway Kubernetes cluster: real control plane and kubelets in namespaces of their own, used by
tools/cluster, tests/cluster and the demo.

Every binary is real and built from pinned Go modules (tools/build-real): etcd, kube-apiserver,
kube-controller-manager, kube-scheduler, and per node a kubelet, kube-proxy and containerd with runc and the
standard CNI plugins. Nothing touches the machine's own CNI directories or network: each node lives in a
network and mount namespace of its own, the control plane in a hub namespace that joins them, and the only
thing on the machine's own network is a loopback port that forwards to the API server.
"""
