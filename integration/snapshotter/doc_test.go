//go:build vmtest

// Package snapshotter holds the VM tests that run against Docker 25+ with the containerd image
// store on containerd's devmapper snapshotter (profile trixie: docker.io 26).
package snapshotter
