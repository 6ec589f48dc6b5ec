// Package migrate moves the engine's loop-lvm thin pool onto LVM (`dmsize pool migrate`)
// without losing a container, an image or a volume: the blocks the pool's metadata maps are
// copied to the same block numbers on a plain LV, the metadata as the kernel wrote it, and
// LVM adopts the pool (docs/research/pool-migration.md has the design and its sources).
//
// This package holds what migrate reads of the stopped engine, never writing it (source.go:
// the loop files, the metadata superblock, thin_check and thin_dump, the engine's records,
// daemon.json); the decisions, as pure functions with their own tests: what thin_dump
// says of the frozen metadata (dump.go), which data blocks to copy (the union of every
// device's mappings, coalesced), and the plan: whether the move may start and what it makes
// (plan.go); and the copy itself, with its checkpoints and per-range hashes, and the re-read that
// checks them (copy.go); and the journalled step machine that runs a step table forward or
// back, so that a kill at any point is continued or undone by the next run (journal.go). The
// step table itself (the LVM commands, the engine's daemon.json) and the command come next.
package migrate
