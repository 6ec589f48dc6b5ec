package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"time"
)

// PluginCall posts a JSON body to a managed plugin's socket, as dockerd does, and decodes the
// answer into out. name is the plugin's name in `docker plugin ls`; socket its config.json
// Interface.Socket.
func (e *Engine) PluginCall(name, socket, path string, body, out any) error {
	e.t.Helper()
	id := e.Docker("plugin", "inspect", "--format", "{{.Id}}", name)
	sock := filepath.Join("/run/docker/plugins", id, socket)
	c := &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}},
	}
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	resp, err := c.Post("http://plugin"+path, "application/vnd.docker.plugins.v1.2+json", bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("plugin %s %s: %w", name, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("plugin %s %s: HTTP %d", name, path, resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
