package volume

// Pool is what the volumes need of their thin pool: ownpool.go implements it on
// device-mapper and loop files (dmsize's own pool), lvmpool.go with the host's lvm (an
// operator's LVM thin pool), the unit tests with a fake kernel.
type Pool interface {
	// CreateThin makes r's thin device (r.ThinID, r.Size); ErrExists if the pool has it.
	CreateThin(r Record) error
	// DeleteThin deletes r's thin device and its blocks; an absent one is not an error.
	DeleteThin(r Record) error
	// Activate makes r's device exist at r.Size or larger (never smaller) and returns its
	// node. Repeating it does nothing.
	Activate(r Record) (string, error)
	// Deactivate removes r's device; absent is not an error, ErrBusy if it is open.
	Deactivate(r Record) error
	// Node is r's device node, whether or not it is active.
	Node(r Record) string
}

// Transactional is a pool whose transaction id is dmsize's (its own pool, to which it sends
// the create and delete messages itself): each change moves the id by one, recorded in
// pool.json, so that a start can tell whether an interrupted change reached the pool. An LVM
// pool is not one: LVM owns that pool's id and commits its own changes; there a removal
// happened iff the LV is gone, and a create's LV is its own iff its record says it made it.
type Transactional interface {
	// TransactionID is the pool's transaction id as the kernel has it.
	TransactionID() (uint64, error)
	// SetTransactionID moves the pool's transaction id from old to new.
	SetTransactionID(old, new uint64) error
}

// Sized is a pool that can say how many bytes of data it has now (for the over-commit
// warning); a pool not made yet has 0.
type Sized interface {
	DataBytes() (int64, error)
}

// Filesystems is what the volumes need of mkfs and the mount table.
type Filesystems interface {
	Make(dev, fs string) error
	Mount(dev, dir, fs string) error
	Unmount(dir string) error // not mounted is not an error
	Mounted(dir string) (bool, error)
	// MountPoints lists where dev is mounted in the plugin's namespace; with unsharedOnly, by
	// mounts in no peer group (unmounting those touches no other namespace).
	MountPoints(dev string, unsharedOnly bool) ([]string, error)
	Grow(dev string, size int64) error // never shrinks; the same size does nothing
}

// poolLabel names a volume pool in messages.
func poolLabel(pool string) string {
	if pool == "" {
		return "dmsize's own pool (VOLUME_POOL empty)"
	}
	return "the LVM thin pool " + pool
}
