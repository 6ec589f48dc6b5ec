package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	"github.com/dmsize/dmsize/controlapi"
)

// pluginsRoot is where the engine makes each managed plugin's socket directory, by full ID.
const pluginsRoot = controlapi.PluginSocketDir

// entrypoint tells the dmsize plugin from others (config.json), whatever name it was
// installed under: a registry's, with any tag.
var entrypoint = []string{"/dmsize-plugin"}

// client is a control client for --socket's path, or for the plugin the engine runs.
func (a *app) client(ctx context.Context) (*controlapi.Client, error) {
	sock := a.socket
	if sock == "" {
		var err error
		if sock, err = a.discover(ctx); err != nil {
			return nil, err
		}
	} else if a.plugin != "" {
		return nil, usageErr("--plugin and --socket: give one")
	}
	return controlapi.NewClient(sock), nil
}

// discover finds the plugin's control socket through the Docker API.
func (a *app) discover(ctx context.Context) (string, error) {
	host := a.host
	if host == "" {
		host = a.getenv("DOCKER_HOST")
	}
	if host == "" {
		host = defaultHost
	}
	// Negotiation: engines back to 17.06 (API 1.30) serve the plugin endpoints dmsize uses.
	api, err := client.NewClientWithOpts(client.WithHost(host), client.WithAPIVersionNegotiation())
	if err != nil {
		return "", usageErr("Docker API %s: %v", host, err)
	}
	defer api.Close()
	ctx, cancel := context.WithTimeout(ctx, controlapi.DefaultTimeout)
	defer cancel()
	p, err := a.findPlugin(ctx, api)
	if err != nil {
		var f *failure
		if errors.As(err, &f) {
			return "", err
		}
		if client.IsErrConnectionFailed(err) {
			return "", unreachableErr("cannot reach the Docker engine at %s to find the dmsize plugin (is dockerd running? --socket PATH needs no engine)", host)
		}
		return "", unreachableErr("finding the dmsize plugin through the Docker engine at %s: %v", host, err)
	}
	if !p.Enabled {
		return "", unreachableErr("the dmsize plugin %s is disabled (docker plugin enable %s)", p.Name, p.Name)
	}
	return filepath.Join(a.pluginsRoot, p.ID, controlapi.SocketName), nil
}

func (a *app) findPlugin(ctx context.Context, api *client.Client) (*types.Plugin, error) {
	if a.plugin != "" {
		p, _, err := api.PluginInspectWithRaw(ctx, a.plugin)
		if client.IsErrNotFound(err) {
			return nil, unreachableErr("no plugin %s is installed (docker plugin ls)", a.plugin)
		}
		if err != nil {
			return nil, err
		}
		if !isDmsize(p) {
			return nil, unreachableErr("plugin %s is not dmsize: its entrypoint is %q, not %q", p.Name, p.Config.Entrypoint, entrypoint)
		}
		return p, nil
	}
	list, err := api.PluginList(ctx, filters.NewArgs())
	if err != nil {
		return nil, err
	}
	var found []*types.Plugin
	var names []string
	for _, p := range list {
		if isDmsize(p) {
			found = append(found, p)
			names = append(names, fmt.Sprintf("%s (%s)", p.Name, enabled(p.Enabled)))
		}
	}
	switch len(found) {
	case 0:
		return nil, unreachableErr("no dmsize plugin is installed (docker plugin ls; README: Install)")
	case 1:
		return found[0], nil
	}
	return nil, usageErr("%d dmsize plugins are installed: %s; say which with --plugin NAME", len(found), strings.Join(names, ", "))
}

func isDmsize(p *types.Plugin) bool { return slices.Equal(p.Config.Entrypoint, entrypoint) }

func enabled(on bool) string {
	if on {
		return "enabled"
	}
	return "disabled"
}

// hint says what to do when the control socket refuses the user: it is root's. (The client
// keeps only the dial error's text.)
func hint(err error) error {
	if errors.Is(err, controlapi.ErrUnreachable) && errors.Is(err, syscall.EACCES) {
		return fmt.Errorf("%w (the control socket is root's: run dmsize as root)", err)
	}
	return err
}
