package engine

import (
	"context"
	"fmt"
	"strconv"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	"github.com/dmsize/dmsize/size"
)

// Container is what dmsize needs to know about a container.
type Container struct {
	ID, Name       string
	Labels         map[string]string
	Running        bool
	State          string // created, running, exited, ...
	ReadonlyRootfs bool
	Driver         string // graph driver: "devicemapper" for dmsize's containers
	DeviceName     string // thin device name, without /dev/mapper/
	DeviceID       int    // thin device id in the pool
	DeviceSize     int64  // the daemon's in-memory (cached) size of the device
}

// ErrNotFound is returned (wrapped) for a container the engine does not know.
var ErrNotFound = fmt.Errorf("no such container")

// Container inspects one container, named by its ID, a unique prefix of it, or its name; the
// result's ID is always the full ID.
func (c *Client) Container(ctx context.Context, ref string) (Container, error) {
	r, err := c.api.ContainerInspect(ctx, ref)
	if err != nil {
		if client.IsErrNotFound(err) {
			return Container{}, fmt.Errorf("engine: container %s: %w", ref, ErrNotFound)
		}
		return Container{}, fmt.Errorf("engine: inspecting container %s: %w", ref, err)
	}
	ct := Container{ID: r.ID, Name: trimSlash(r.Name), Driver: r.GraphDriver.Name}
	if r.Config != nil {
		ct.Labels = r.Config.Labels
	}
	if r.State != nil {
		ct.Running = r.State.Running
		ct.State = r.State.Status
	}
	if r.HostConfig != nil {
		ct.ReadonlyRootfs = r.HostConfig.ReadonlyRootfs
	}
	d := r.GraphDriver.Data
	ct.DeviceName = d["DeviceName"]
	if v, ok := d["DeviceId"]; ok {
		ct.DeviceID, _ = strconv.Atoi(v)
	}
	if v, ok := d["DeviceSize"]; ok {
		ct.DeviceSize, _ = strconv.ParseInt(v, 10, 64)
	}
	return ct, nil
}

// SizedContainers lists the ids of every container, running or not, that carries the size
// label.
func (c *Client) SizedContainers(ctx context.Context) ([]string, error) {
	list, err := c.api.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", size.Label))})
	if err != nil {
		return nil, fmt.Errorf("engine: listing containers: %w", err)
	}
	ids := make([]string, 0, len(list))
	for _, s := range list {
		ids = append(ids, s.ID)
	}
	return ids, nil
}

func trimSlash(s string) string {
	if len(s) > 0 && s[0] == '/' {
		return s[1:]
	}
	return s
}

// RunningWithVolume counts the running, paused or restarting containers that mount volume
// name: the ones that may still use it. (A stopped one keeps the engine itself from removing
// the volume.)
func (c *Client) RunningWithVolume(ctx context.Context, name string) (int, error) {
	list, err := c.api.ContainerList(ctx, container.ListOptions{Filters: filters.NewArgs(
		filters.Arg("volume", name), filters.Arg("status", "running"), filters.Arg("status", "paused"), filters.Arg("status", "restarting"))})
	if err != nil {
		return 0, fmt.Errorf("engine: listing the containers that mount volume %s: %w", name, err)
	}
	return len(list), nil
}

// ContainersWithVolume counts the containers, in any state, that refer to volume name. A
// container refers to its volumes from its create on, before it mounts them at its start.
func (c *Client) ContainersWithVolume(ctx context.Context, name string) (int, error) {
	list, err := c.api.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("volume", name))})
	if err != nil {
		return 0, fmt.Errorf("engine: listing the containers that refer to volume %s: %w", name, err)
	}
	return len(list), nil
}
