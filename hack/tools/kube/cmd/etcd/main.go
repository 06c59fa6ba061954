// Command etcd is the etcd server at the version Kubernetes itself is tested with.
//
// It exists so the local control plane builds etcd from the same pinned module graph as
// kube-apiserver instead of downloading a release binary.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
