// Package worker is the fleet agent's library: today the FleetLock server
// that Fedora CoreOS's Zincati asks for a reboot slot (see FleetLock); the
// rolling-upgrade agent follows.
//
// It is built on the coordination primitives over clientv3 only, so it
// works against coordd or any etcd v3 cluster.
package worker
