// Package kernel_test checks the README's Kernels table against the code: every kernel
// interface the product's code uses has a row there.
package kernel_test

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// goToKernel names the kernel's name of each interface the code spells its own way: the dm
// ioctl's commands and flags (kernel/dm/abi.go), the filesystem ioctls (kernel/fs/ioctl.go),
// and x/sys/unix's loop ioctl helpers. A new one fails the test until it is named here and
// has its row in the README.
var goToKernel = map[string]string{
	"cmdVersion": "DM_VERSION", "cmdListDevices": "DM_LIST_DEVICES", "cmdDevCreate": "DM_DEV_CREATE",
	"cmdDevRemove": "DM_DEV_REMOVE", "cmdDevRename": "DM_DEV_RENAME", "cmdDevSuspend": "DM_DEV_SUSPEND",
	"cmdDevStatus": "DM_DEV_STATUS", "cmdTableLoad": "DM_TABLE_LOAD", "cmdTableClear": "DM_TABLE_CLEAR",
	"cmdTableStatus": "DM_TABLE_STATUS", "cmdTargetMsg": "DM_TARGET_MSG", "cmdDevArmPoll": "DM_DEV_ARM_POLL",
	"flagReadOnly": "DM_READONLY_FLAG", "flagSuspend": "DM_SUSPEND_FLAG", "flagStatusTable": "DM_STATUS_TABLE_FLAG",
	"flagActivePresent": "DM_ACTIVE_PRESENT_FLAG", "flagInactivePresent": "DM_INACTIVE_PRESENT_FLAG",
	"flagBufferFull": "DM_BUFFER_FULL_FLAG", "flagNoFlush": "DM_NOFLUSH_FLAG", "flagDataOut": "DM_DATA_OUT_FLAG",
	"flagDeferredRemove": "DM_DEFERRED_REMOVE",
	"ext4IocResizeFS":    "EXT4_IOC_RESIZE_FS", "xfsIocFSGeometryV1": "XFS_IOC_FSGEOMETRY_V1", "xfsIocFSGrowFSData": "XFS_IOC_FSGROWFSDATA",
	"IoctlLoopConfigure": "LOOP_CONFIGURE", "IoctlLoopSetStatus64": "LOOP_SET_STATUS64", "IoctlLoopGetStatus64": "LOOP_GET_STATUS64",
}

var (
	// x/sys/unix constants of kernel interfaces (not plain file flags or errnos).
	unixConst = regexp.MustCompile(`\bunix\.((?:LOOP|BLK|MS|MNT|RENAME|CLONE|EFD|LO_FLAGS|FALLOC|FS_IOC)_?[A-Z0-9_]*|O_DIRECT)\b`)
	unixLoop  = regexp.MustCompile(`\bunix\.(IoctlLoop[A-Za-z0-9]+)\b`)
	ownNames  = regexp.MustCompile(`^\s*((?:cmd|flag)[A-Z]\w*|(?:ext4|xfs)Ioc\w+)\s+=`)
	procSys   = regexp.MustCompile(`"(/(?:proc|sys)/[^"]*)"`)
	target    = regexp.MustCompile(`Type(?:: | [!=]= )"([a-z-]+)"`)
	message   = regexp.MustCompile(`"(@?[a-z]+_[a-z_]+|delete)[ "]`)
)

// uses is every kernel interface the product's code names, and a file that names it.
func uses(t *testing.T) map[string]string {
	t.Helper()
	found := map[string]string{}
	add := func(name, where string) {
		if _, ok := found[name]; !ok {
			found[name] = where
		}
	}
	root := ".."
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() && (rel == "integration" || rel == "internal" || strings.HasPrefix(d.Name(), ".") && rel != ".") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range unixConst.FindAllStringSubmatch(string(src), -1) {
			add(m[1], rel)
		}
		for _, m := range unixLoop.FindAllStringSubmatch(string(src), -1) {
			add(m[1], rel)
		}
		for _, m := range procSys.FindAllStringSubmatch(string(src), -1) {
			add(m[1], rel)
		}
		for _, m := range target.FindAllStringSubmatch(string(src), -1) {
			add(m[1], rel)
		}
		if strings.HasPrefix(rel, filepath.Join("kernel", "dm")) {
			for _, m := range message.FindAllStringSubmatch(string(src), -1) {
				add(m[1], rel)
			}
		}
		if strings.HasPrefix(rel, "kernel") {
			for _, line := range strings.Split(string(src), "\n") {
				if m := ownNames.FindStringSubmatch(line); m != nil {
					add(m[1], rel)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// Every kernel interface the code uses is in the README's Kernels table, by its kernel name.
func TestKernelsTableCoversTheCode(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	start := strings.Index(string(readme), "\n## Kernels\n")
	if start < 0 {
		t.Fatal("README.md has no Kernels section")
	}
	section := string(readme[start+1:])
	if end := strings.Index(section[3:], "\n## "); end >= 0 {
		section = section[:end+3]
	}
	found := uses(t)
	var names []string
	for name := range found {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		kname := name
		if k, ok := goToKernel[name]; ok {
			kname = k
		} else if strings.HasPrefix(name, "cmd") || strings.HasPrefix(name, "flag") || strings.Contains(name, "Ioc") || strings.HasPrefix(name, "IoctlLoop") {
			t.Errorf("%s (%s) is a kernel interface this test does not know: add its kernel name to goToKernel and a row to the README's Kernels table", name, found[name])
			continue
		}
		if !strings.Contains(section, "`"+kname+"`") {
			t.Errorf("`%s` (used in %s) has no row in the README's Kernels table", kname, found[name])
		}
	}
	if len(names) < 40 {
		t.Errorf("only %d interfaces found in the code; the patterns have gone blind: %v", len(names), names)
	}
}
