//go:build vmtest

// Package snapshotter holds the VM tests that run against Docker 25+ with the containerd image
// store on containerd's devmapper snapshotter (profile trixie: docker.io 26).
package snapshotter

import (
	"strings"
	"testing"

	"github.com/dmsize/dmsize/integration/harness"
)

// The engine comes up with the containerd image store on the devmapper snapshotter, and a
// container's root filesystem is a thin snapshot device of the configured pool.
func TestContainerdDevmapperEngine(t *testing.T) {
	e := harness.StartEngine(t, harness.Setup{Kind: "containerd-devmapper", FS: "ext4"})
	if got := e.Docker("info", "--format", "{{.Driver}}"); got != "devmapper" {
		t.Fatalf("docker info Driver = %q, want devmapper", got)
	}
	e.ImportBusybox()
	id := e.Docker("run", "-d", "--network", "none", "busybox", "sleep", "300")
	snaps := harness.MustRun(t, "ctr", "-n", "moby", "snapshots", "--snapshotter", "devmapper", "ls")
	if !strings.Contains(snaps, id) {
		t.Fatalf("no devmapper snapshot keyed by container %s:\n%s", id, snaps)
	}
	var snapDev string
	for _, l := range strings.Split(harness.MustRun(t, "dmsetup", "ls"), "\n") {
		if f := strings.Fields(l); len(f) > 0 && strings.HasPrefix(f[0], "dmsize-ctrd-pool-snap-") {
			snapDev = f[0]
		}
	}
	if snapDev == "" {
		t.Fatal("no thin snapshot device of the pool is active")
	}
	if table := harness.MustRun(t, "dmsetup", "table", snapDev); !strings.Contains(table, " thin ") {
		t.Fatalf("%s table %q is not thin", snapDev, table)
	}
	size := harness.ParseDfKiB(t, e.Docker("exec", id, "df", "-P", "-k", "/"))
	if size < 9*harness.GiB || size > 11*harness.GiB {
		t.Fatalf("root filesystem %d bytes, want about the 10GB base image size", size)
	}
	e.Docker("rm", "-f", id)
}
