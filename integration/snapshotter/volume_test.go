//go:build vmtest

package snapshotter

import (
	"strings"
	"testing"
	"time"

	"github.com/dmsize/dmsize/integration/harness"
	"github.com/dmsize/dmsize/volume"
)

// volumeOnDocker26: the volume driver does not depend on the engine's storage. On Docker 26
// with the containerd image store, a sized volume is mounted in a container at its size, grows
// online, and its removal leaves nothing: no device, no thin device in the volume pool.
func volumeOnDocker26(t *testing.T, e *harness.Engine) {
	start := time.Now()
	e.Docker("volume", "create", "-d", harness.Plugin, "-o", "size=2G", "v26")
	t.Logf("docker volume create -o size=2G: %v (the first one also makes the pool)", time.Since(start).Round(time.Millisecond))
	id := e.Docker("run", "-d", "--network", "none", "--stop-timeout", "1", "-v", "v26:/v", "busybox", "sh", "-c",
		"dd if=/dev/urandom of=/v/f bs=1M count=8 2>/dev/null && md5sum /v/f > /v/f.md5 && sync && sleep 3600")
	e.WaitFor("the container's checksum", time.Minute, func() bool {
		_, err := e.TryDocker("exec", id, "test", "-s", "/v/f.md5")
		return err == nil
	})
	df := func() int64 { return harness.ParseDfKiB(t, e.Docker("exec", id, "df", "-P", "-k", "/v")) }
	if got := df(); got > 2*G || got < 2*G*93/100 {
		t.Fatalf("df in the container: %d bytes, want about 2 GiB", got)
	}
	if out, errOut, code := harness.CLI("volume", "grow", "v26", "3G"); code != 0 {
		t.Fatalf("dmsize volume grow v26 3G: exit %d\n%s\n%s", code, out, errOut)
	} else {
		t.Logf("dmsize volume grow v26 3G: %s", strings.TrimSpace(out))
	}
	if got := df(); got > 3*G || got < 3*G*93/100 {
		t.Fatalf("df in the running container after the grow: %d bytes, want about 3 GiB", got)
	}
	if out, err := e.TryDocker("exec", id, "md5sum", "-c", "/v/f.md5"); err != nil {
		t.Fatalf("the volume's data after the grow: %v\n%s", err, out)
	}
	e.Docker("rm", "-f", id)
	e.Docker("volume", "rm", "v26")
	names, err := harness.DeviceNames()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if strings.HasPrefix(n, "dmsize-vol-") {
			t.Fatalf("device %s left after docker volume rm", n)
		}
	}
	if ids := harness.PoolThinIDs(t, volume.PoolName); len(ids) != 0 {
		t.Fatalf("thin devices left in the volume pool: %v", ids)
	}
}
