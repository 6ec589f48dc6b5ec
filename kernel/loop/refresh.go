package loop

import "fmt"

// Refresh makes every loop device backed by the file at path pick up the file's current size.
// It returns the devices and their capacity in bytes (the smallest, should they differ because
// of an offset or size limit). It fails if no loop device backs the file.
func Refresh(path string) (devs []string, capacity int64, err error) {
	devs, err = FindByFile(path)
	if err != nil {
		return nil, 0, err
	}
	if len(devs) == 0 {
		return nil, 0, fmt.Errorf("refresh loop devices of %s: no loop device backs it", path)
	}
	capacity = -1
	for _, dev := range devs {
		if err := SetCapacity(dev); err != nil {
			return devs, 0, fmt.Errorf("refresh loop devices of %s: %w", path, err)
		}
		c, err := Capacity(dev)
		if err != nil {
			return devs, 0, fmt.Errorf("refresh loop devices of %s: %w", path, err)
		}
		if capacity < 0 || c < capacity {
			capacity = c
		}
	}
	return devs, capacity, nil
}
