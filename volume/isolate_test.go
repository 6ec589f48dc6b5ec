package volume

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
)

// Outside the plugin (its propagatedMount is no mount point) Isolate changes no mount: run by
// mistake on a host, it must not make the host's data root a slave or detach its plugins'
// propagated-mount directories.
func TestIsolateOutsideThePlugin(t *testing.T) {
	root := t.TempDir()
	log, hook := test.NewNullLogger()
	if err := Isolate(root, filepath.Join(root, "mnt", "volumes"), log); err != nil {
		t.Fatal(err)
	}
	if e := hook.LastEntry(); e == nil || e.Level != logrus.InfoLevel || !strings.Contains(e.Message, "not in the plugin") {
		t.Fatalf("log: %+v", hook.AllEntries())
	}
}
