// Package dm drives the Linux device-mapper through ioctls on /dev/mapper/control: list, inspect,
// create, load, suspend, resume and remove devices, read tables and status lines, and wait for
// device events. It is pure Go (no cgo, no libdevmapper, no dmsetup) so that it works from a
// static binary in a managed plugin's rootfs.
//
// The kernel ABI is include/uapi/linux/dm-ioctl.h; this package speaks interface version 4.
// ParsePoolStatus and friends (thin.go) read the thin and thin-pool targets' lines.
//
// Safety: Message refuses every target message that is not on a short read-only allowlist, so
// the product cannot create, delete or snapshot thin devices or change the transaction id of
// the engine's pool (or containerd's). Only OwnPoolMessage sends create_thin, delete and
// set_transaction_id, built from numbers by CreateThin, DeleteThin and SetTransactionID, and
// only to a pool whose UUID says dmsize created it (the volume pool). There is no create_snap.
// CancelDeferredRemove sends device-mapper core's fixed "@cancel_deferred_remove".
// DM_REMOVE_ALL is never issued.
package dm
