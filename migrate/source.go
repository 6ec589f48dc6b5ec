package migrate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/dmsize/dmsize/engine/devmeta"
	"github.com/dmsize/dmsize/kernel/errs"
	"github.com/dmsize/dmsize/kernel/thin"
)

// Tools runs the host's thin-provisioning-tools on a metadata file.
type Tools interface {
	Dump(metaFile string) ([]byte, error) // thin_dump's XML
	Check(metaFile string) error          // thin_check: nil when it passes
}

// The engine's files under its driver home (ENGINE-FACTS): the loop files, and its records,
// of which two are not per-device.
const (
	dataFile          = "devicemapper/data"
	metaFile          = "devicemapper/metadata"
	recordsDir        = "metadata"
	transactionRecord = "transaction-metadata"
	deviceSetRecord   = "deviceset-metadata"
)

// ReadSource reads what migrate needs of the stopped engine whose devicemapper driver home is
// home (/var/lib/docker/devicemapper), and of its daemon.json. It reads and never writes.
// What is not a loop-lvm pool is refused; a failing thin_check is recorded for the plan.
func ReadSource(home, daemonJSON string, tools Tools) (Source, error) {
	var src Source
	opts, err := storageOpts(daemonJSON)
	if err != nil {
		return src, err
	}
	for _, o := range opts {
		if k, v, _ := strings.Cut(o, "="); strings.TrimSpace(k) == "dm.thinpooldev" {
			return src, errs.Refuse("the engine already runs on the thin pool %s (dm.thinpooldev in %s), not on loop files", strings.TrimSpace(v), daemonJSON)
		}
	}
	src.StorageOpts = opts
	src.DataFile, src.MetaFile = filepath.Join(home, dataFile), filepath.Join(home, metaFile)
	for _, f := range []string{src.DataFile, src.MetaFile} {
		if _, err := os.Stat(f); errors.Is(err, os.ErrNotExist) {
			return src, errs.Refuse("no loop-lvm pool at %s: %s is missing", home, f)
		} else if err != nil {
			return src, err
		}
	}
	f, err := os.Open(src.MetaFile)
	if err != nil {
		return src, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return src, err
	}
	src.MetaFileBytes = st.Size()
	sb, err := thin.ReadSuperblock(f)
	if err != nil {
		return src, fmt.Errorf("%s: %w", src.MetaFile, err)
	}
	src.HeldRoot = sb.HeldRoot != 0
	src.CheckErr = tools.Check(src.MetaFile)
	if src.CheckErr == nil {
		xml, err := tools.Dump(src.MetaFile)
		if err != nil {
			return src, fmt.Errorf("thin_dump %s: %w", src.MetaFile, err)
		}
		if src.Meta, err = ParseDump(bytes.NewReader(xml)); err != nil {
			return src, err
		}
		if src.Meta.Transaction != sb.Transaction {
			return src, fmt.Errorf("%s: thin_dump says transaction %d, the superblock %d", src.MetaFile, src.Meta.Transaction, sb.Transaction)
		}
	} else {
		// The plan refuses on CheckErr; the superblock still gives what it can.
		src.Meta = Metadata{Transaction: sb.Transaction, BlockSectors: uint64(sb.DataBlock), Flags: uint64(sb.Flags)}
	}
	src.EngineTransaction, src.EngineDevices, err = readRecords(filepath.Join(home, recordsDir))
	return src, err
}

// storageOpts is daemon.json's storage-opts; no daemon.json is no options.
func storageOpts(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var d struct {
		Driver string   `json:"storage-driver"`
		Opts   []string `json:"storage-opts"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if d.Driver != "" && d.Driver != "devicemapper" {
		return nil, errs.Refuse("the engine's storage-driver in %s is %q, not devicemapper", path, d.Driver)
	}
	return d.Opts, nil
}

// readRecords reads the engine's transaction record and every per-device record.
func readRecords(dir string) (uint64, map[string]devmeta.Device, error) {
	b, err := os.ReadFile(filepath.Join(dir, transactionRecord))
	if err != nil {
		return 0, nil, fmt.Errorf("the engine's transaction record: %w", err)
	}
	var tx struct {
		Open uint64 `json:"open_transaction_id"`
	}
	if err := json.Unmarshal(b, &tx); err != nil {
		return 0, nil, fmt.Errorf("%s: %w", filepath.Join(dir, transactionRecord), err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, nil, err
	}
	devs := map[string]devmeta.Device{}
	for _, e := range ents {
		n := e.Name()
		// The engine skips dot-files (its temp files) when it loads; so does migrate.
		if !e.Type().IsRegular() || strings.HasPrefix(n, ".") || n == transactionRecord || n == deviceSetRecord {
			continue
		}
		d, err := devmeta.Read(filepath.Join(dir, n))
		if err != nil {
			return 0, nil, err
		}
		devs[n] = d
	}
	return tx.Open, devs, nil
}
