// Package engine is dmsize's view of the Docker engine: its storage driver and pool, the
// containers that ask for a size, the event stream, and the one API call dmsize uses to make
// the engine activate a container's device under its own locks.
package engine

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/docker/docker/client"
)

// Client talks to the engine's API. The API version is negotiated, so engines back to 17.06
// (API 1.30) work.
type Client struct {
	api *client.Client
}

// New connects to the engine at host ("unix:///var/run/docker.sock" when empty).
func New(host string) (*Client, error) {
	if host == "" {
		host = "unix:///var/run/docker.sock"
	}
	api, err := client.NewClientWithOpts(client.WithHost(host), client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	return &Client{api: api}, nil
}

// Close releases the client's connections.
func (c *Client) Close() error { return c.api.Close() }

// WaitReady waits until the engine answers a ping. At daemon boot the engine starts managed
// plugins before it serves its API, so the plugin must not wait for this before its handshake.
func (c *Client) WaitReady(ctx context.Context) error {
	delay := 100 * time.Millisecond
	for {
		if _, err := c.api.Ping(ctx); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("engine: API not answering: %w", ctx.Err())
		case <-time.After(delay):
		}
		if delay < 2*time.Second {
			delay *= 2
		}
	}
}

// Storage is the engine's devicemapper storage, from `docker info`.
type Storage struct {
	Driver          string // "devicemapper"; anything else is not for dmsize
	PoolName        string // e.g. "docker-254:0-131101-pool" or "docker-thinpool"
	DataRoot        string // e.g. /var/lib/docker
	DeferredRemoval bool
	// DeferredDeletion: the engine retries a thin delete that finds the device busy, instead
	// of failing `docker rm`.
	DeferredDeletion bool
	ServerVersion    string
	// DataLoopFile and MetaLoopFile are loop-lvm's sparse files; empty for a pool on block
	// devices (direct-lvm, or dm.thinpooldev on anything else).
	DataLoopFile, MetaLoopFile string
	// Snapshotter is the containerd snapshotter under the engine's containerd image store
	// (Docker 25+: "driver-type" io.containerd.snapshotter.v1), e.g. "devmapper"; "" on a
	// graph driver.
	Snapshotter string
}

// Within returns the storage as seen where the engine's data root is mounted at root (a
// managed plugin sees it at its mount's destination, /var/lib/docker, whatever the host's
// --data-root is): every path under DataRoot is moved under root.
func (s Storage) Within(root string) Storage {
	from := strings.TrimSuffix(s.DataRoot, "/")
	move := func(p string) string {
		if from != "" && (p == from || strings.HasPrefix(p, from+"/")) {
			return root + strings.TrimPrefix(p, from)
		}
		return p
	}
	s.DataLoopFile, s.MetaLoopFile = move(s.DataLoopFile), move(s.MetaLoopFile)
	s.DataRoot = root
	return s
}

// Home is the graph driver's home, where its metadata directory lives.
func (s Storage) Home() string { return strings.TrimSuffix(s.DataRoot, "/") + "/devicemapper" }

// snapshotterType is the driver-type `docker info` shows for a containerd snapshotter.
const snapshotterType = "io.containerd.snapshotter.v1"

// Storage reads the engine's storage set-up.
func (c *Client) Storage(ctx context.Context) (Storage, error) {
	info, err := c.api.Info(ctx)
	if err != nil {
		return Storage{}, fmt.Errorf("engine: docker info: %w", err)
	}
	s := Storage{Driver: info.Driver, DataRoot: info.DockerRootDir, ServerVersion: info.ServerVersion}
	for _, kv := range info.DriverStatus {
		switch kv[0] {
		case "Pool Name":
			s.PoolName = kv[1]
		case "Deferred Removal Enabled":
			s.DeferredRemoval = kv[1] == "true"
		case "Deferred Deletion Enabled":
			s.DeferredDeletion = kv[1] == "true"
		case "Data loop file":
			s.DataLoopFile = kv[1]
		case "Metadata loop file":
			s.MetaLoopFile = kv[1]
		case "driver-type":
			if kv[1] == snapshotterType {
				s.Snapshotter = info.Driver
			}
		}
	}
	return s, nil
}
