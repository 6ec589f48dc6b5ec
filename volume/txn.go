package volume

import "fmt"

// countTxn is how many of rs carry transaction id txn.
func countTxn(rs []Record, txn uint64) int {
	n := 0
	for _, r := range rs {
		if r.Txn == txn {
			n++
		}
	}
	return n
}

// checkTxn refuses to change a pool whose transaction id is not the one dmsize committed
// (something else changed it); a pool whose id is not dmsize's passes.
func (v *Volumes) checkTxn(name string) error {
	if v.txn == nil {
		return nil
	}
	k, err := v.txn.TransactionID()
	if err != nil {
		return err
	}
	if k != v.tid {
		return fmt.Errorf("volume %s: the pool's transaction id is %d, dmsize committed %d; refusing to change the pool", name, k, v.tid)
	}
	return nil
}

// nextTxn is the transaction id the next change moves the pool to; 0 (none) for a pool whose
// id is not dmsize's.
func (v *Volumes) nextTxn() uint64 {
	if v.txn == nil {
		return 0
	}
	return v.tid + 1
}

// commitTxn moves the pool's transaction id to txn (= v.tid+1) and records it; nothing for a
// pool whose id is not dmsize's.
func (v *Volumes) commitTxn(txn uint64) error {
	if v.txn == nil {
		return nil
	}
	if err := v.txn.SetTransactionID(v.tid, txn); err != nil {
		return err
	}
	v.step(StepTxnSet)
	if err := v.store.putPool(poolRecord{TransactionID: txn}); err != nil {
		return err
	}
	v.tid = txn
	v.step(StepPoolRecorded)
	return nil
}

// freeID is the lowest thin id above after that no record holds.
func (v *Volumes) freeID(after uint32) uint32 {
	used := map[uint32]bool{}
	for _, r := range v.recs {
		used[r.ThinID] = true
	}
	id := after + 1
	for used[id] {
		id++
	}
	return id
}
