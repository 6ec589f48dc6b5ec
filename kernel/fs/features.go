package fs

import (
	"fmt"
	"sort"

	"github.com/dmsize/dmsize/kernel/release"
)

// Features are a superblock's feature bits. A kernel mounts a filesystem read-write only if it
// knows every incompat and ro-compat bit. It ignores compat bits it does not know, and with
// them what they mean (orphan_file): dmsize counts them too.
type Features struct {
	Compat, ROCompat, Incompat uint32
}

// feature is one feature bit and the first mainline kernel that mounts a filesystem with it.
type feature struct {
	name  string
	kind  int // compat, roCompat or incompat
	bit   uint32
	since release.Version
}

const (
	compat = iota
	roCompat
	incompat
)

// featureTable: every ext4 and XFS feature bit, from the kernels' ext4.h and xfs_format.h;
// the first kernel from ext4(5) (e2fsprogs 1.47) and the xfsprogs release that brought each
// XFS feature (docs/research/kernel-floor.md). A bit that is not here fails MadeFor.
var featureTable = map[Type][]feature{
	Ext4: {
		{"dir_prealloc", compat, 0x1, release.Mainline(2, 2)},
		{"imagic_inodes", compat, 0x2, release.Mainline(2, 2)},
		{"has_journal", compat, 0x4, release.Mainline(2, 4)},
		{"ext_attr", compat, 0x8, release.Mainline(2, 6)},
		{"resize_inode", compat, 0x10, release.Mainline(2, 6)},
		{"dir_index", compat, 0x20, release.Mainline(2, 6)},
		{"sparse_super2", compat, 0x200, release.Mainline(3, 16)},
		{"fast_commit", compat, 0x400, release.Mainline(5, 10)},
		{"stable_inodes", compat, 0x800, release.Mainline(5, 5)},
		{"orphan_file", compat, 0x1000, release.Mainline(5, 15)},
		{"sparse_super", roCompat, 0x1, release.Mainline(2, 2)},
		{"large_file", roCompat, 0x2, release.Mainline(2, 2)},
		{"huge_file", roCompat, 0x8, release.Mainline(2, 6)},
		{"uninit_bg", roCompat, 0x10, release.Mainline(2, 6)},
		{"dir_nlink", roCompat, 0x20, release.Mainline(2, 6)},
		{"extra_isize", roCompat, 0x40, release.Mainline(2, 6)},
		{"quota", roCompat, 0x100, release.Mainline(3, 6)},
		{"bigalloc", roCompat, 0x200, release.Mainline(3, 2)},
		{"metadata_csum", roCompat, 0x400, release.Mainline(3, 18)},
		{"project", roCompat, 0x2000, release.Mainline(4, 5)},
		{"verity", roCompat, 0x8000, release.Mainline(5, 4)},
		{"orphan_present", roCompat, 0x10000, release.Mainline(5, 15)},
		{"filetype", incompat, 0x2, release.Mainline(2, 2)},
		{"needs_recovery", incompat, 0x4, release.Mainline(2, 4)},
		{"journal_dev", incompat, 0x8, release.Mainline(2, 6)},
		{"meta_bg", incompat, 0x10, release.Mainline(2, 6)},
		{"extent", incompat, 0x40, release.Mainline(2, 6)},
		{"64bit", incompat, 0x80, release.Mainline(2, 6)},
		{"mmp", incompat, 0x100, release.Mainline(3, 0)},
		{"flex_bg", incompat, 0x200, release.Mainline(2, 6)},
		{"ea_inode", incompat, 0x400, release.Mainline(4, 13)},
		{"metadata_csum_seed", incompat, 0x2000, release.Mainline(4, 4)},
		{"large_dir", incompat, 0x4000, release.Mainline(4, 13)},
		{"inline_data", incompat, 0x8000, release.Mainline(3, 8)},
		{"encrypt", incompat, 0x10000, release.Mainline(4, 1)},
		{"casefold", incompat, 0x20000, release.Mainline(5, 2)},
	},
	// XFS v5 (crc) superblocks; v5 itself is in every supported kernel.
	XFS: {
		{"finobt", roCompat, 0x1, release.Mainline(3, 16)},
		{"rmapbt", roCompat, 0x2, release.Mainline(4, 8)},
		{"reflink", roCompat, 0x4, release.Mainline(4, 9)},
		{"inobtcount", roCompat, 0x8, release.Mainline(5, 10)},
		{"ftype", incompat, 0x1, release.Mainline(3, 13)},
		{"sparse", incompat, 0x2, release.Mainline(4, 2)},
		{"meta_uuid", incompat, 0x4, release.Mainline(4, 3)},
		{"bigtime", incompat, 0x8, release.Mainline(5, 10)},
		{"needsrepair", incompat, 0x10, release.Mainline(5, 13)},
		{"nrext64", incompat, 0x20, release.Mainline(5, 19)},
		{"exchange", incompat, 0x40, release.Mainline(6, 10)},
		{"parent", incompat, 0x80, release.Mainline(6, 10)},
	},
}

// featureList is the features set in s, by name; an unknown bit is named by its kind and
// value, and no kernel mounts it.
func (s Super) featureList() []feature {
	var out []feature
	for kind, bits := range map[int]uint32{compat: s.Features.Compat, roCompat: s.Features.ROCompat, incompat: s.Features.Incompat} {
		for b := uint32(1); b != 0; b <<= 1 {
			if bits&b == 0 {
				continue
			}
			f := feature{name: fmt.Sprintf("%s 0x%x", [...]string{"compat", "ro-compat", "incompat"}[kind], b), kind: kind, bit: b, since: release.Mainline(1<<30, 0)}
			for _, known := range featureTable[s.Type] {
				if known.kind == kind && known.bit == b {
					f = known
				}
			}
			out = append(out, f)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// Beyond lists the features of s that kernel k cannot mount ("bigtime (5.10)"), or that no
// table here knows; nil when k mounts s.
func (s Super) Beyond(k release.Version) []string {
	var out []string
	for _, f := range s.featureList() {
		switch {
		case f.since.Major == 1<<30:
			out = append(out, f.name+" (unknown)")
		case k.Before(f.since):
			out = append(out, fmt.Sprintf("%s (%s)", f.name, f.since))
		}
	}
	return out
}
