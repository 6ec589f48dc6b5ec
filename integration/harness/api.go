package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
)

// The tests' docker commands go to the engine's API from the test process when they are of the
// kinds below, and to the docker CLI otherwise. Under TCG a docker CLI process costs about a
// second of CPU before it sends its request (measured: `docker ps -q` 1.15 s, 0.9 s of it user
// time, alone on one vCPU); the tests poll with inspect and exec, and each poll took that second
// from the daemons they waited for. The answers are the CLI's: the same templates over the same
// types, output trimmed, a failure as "Error response from daemon: ..." with exit status 1 (or the
// container's exit status for exec, start -a and attached runs).

var (
	apiOnce   sync.Once
	apiClient *client.Client
	apiErr    error
)

func dockerAPI() (*client.Client, error) {
	apiOnce.Do(func() {
		apiClient, apiErr = client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	})
	return apiClient, apiErr
}

// docker runs one docker command: through the API when apiCommand knows it, else the CLI.
func docker(args ...string) (string, error) {
	if c, err := dockerAPI(); err == nil {
		if run := apiCommand(c, args); run != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			out, code, err := run(ctx)
			out = strings.TrimSpace(out)
			if err != nil {
				if out != "" {
					out += "\n"
				}
				out += err.Error()
				code = max(code, 1)
			}
			if code != 0 {
				return out, fmt.Errorf("docker %s: exit status %d", strings.Join(args, " "), code)
			}
			return out, nil
		}
	}
	return Run(append([]string{"docker"}, args...)...)
}

// apiCall is one command done through the API: its output, its exit status, its error.
type apiCall func(ctx context.Context) (string, int, error)

// apiCommand is the API call for args, or nil when the CLI should run them.
func apiCommand(c *client.Client, args []string) apiCall {
	if len(args) == 0 {
		return nil
	}
	cmd, rest := args[0], args[1:]
	if cmd == "volume" || cmd == "plugin" {
		if len(rest) == 0 {
			return nil
		}
		cmd, rest = cmd+" "+rest[0], rest[1:]
	}
	switch cmd {
	case "inspect":
		return inspect(rest, func(ctx context.Context, id string) (any, []byte, error) {
			return c.ContainerInspectWithRaw(ctx, id, false)
		})
	case "volume inspect":
		return inspect(rest, func(ctx context.Context, name string) (any, []byte, error) {
			return c.VolumeInspectWithRaw(ctx, name)
		})
	case "plugin inspect":
		return inspect(rest, func(ctx context.Context, name string) (any, []byte, error) {
			return c.PluginInspectWithRaw(ctx, name)
		})
	case "info":
		if len(rest) == 2 && (rest[0] == "--format" || rest[0] == "-f") {
			return func(ctx context.Context) (string, int, error) {
				v, err := c.Info(ctx)
				if err != nil {
					return "", 1, err
				}
				return render(rest[1], v, nil)
			}
		}
	case "exec":
		if len(rest) >= 2 && !strings.HasPrefix(rest[0], "-") {
			return func(ctx context.Context) (string, int, error) { return execIn(ctx, c, rest[0], rest[1:]) }
		}
	case "start":
		if len(rest) == 2 && rest[0] == "-a" {
			return func(ctx context.Context) (string, int, error) { return startAttached(ctx, c, rest[1], false) }
		}
		if ids, ok := plain(rest); ok {
			return each(ids, func(ctx context.Context, id string) error { return c.ContainerStart(ctx, id, container.StartOptions{}) })
		}
	case "stop":
		if len(rest) >= 3 && rest[0] == "-t" {
			secs, err := strconv.Atoi(rest[1])
			if ids, ok := plain(rest[2:]); ok && err == nil {
				return each(ids, func(ctx context.Context, id string) error {
					return c.ContainerStop(ctx, id, container.StopOptions{Timeout: &secs})
				})
			}
		}
	case "rm":
		force := len(rest) > 0 && rest[0] == "-f"
		if force {
			rest = rest[1:]
		}
		if ids, ok := plain(rest); ok {
			return each(ids, func(ctx context.Context, id string) error {
				return c.ContainerRemove(ctx, id, container.RemoveOptions{Force: force})
			})
		}
	case "logs":
		if ids, ok := plain(rest); ok && len(ids) == 1 {
			return func(ctx context.Context) (string, int, error) {
				r, err := c.ContainerLogs(ctx, ids[0], container.LogsOptions{ShowStdout: true, ShowStderr: true})
				if err != nil {
					return "", 1, err
				}
				defer r.Close()
				var b bytes.Buffer
				_, err = stdcopy.StdCopy(&b, &b, r)
				return b.String(), 0, err
			}
		}
	case "ps":
		if len(rest) == 1 && (rest[0] == "-q" || rest[0] == "-aq") {
			return func(ctx context.Context) (string, int, error) {
				l, err := c.ContainerList(ctx, container.ListOptions{All: rest[0] == "-aq"})
				if err != nil {
					return "", 1, err
				}
				var ids []string
				for _, ct := range l {
					ids = append(ids, ct.ID[:12])
				}
				return strings.Join(ids, "\n"), 0, nil
			}
		}
	case "volume ls":
		if len(rest) == 1 && rest[0] == "-q" {
			return func(ctx context.Context) (string, int, error) {
				l, err := c.VolumeList(ctx, volume.ListOptions{})
				if err != nil {
					return "", 1, err
				}
				var names []string
				for _, v := range l.Volumes {
					names = append(names, v.Name)
				}
				return strings.Join(names, "\n"), 0, nil
			}
		}
	case "volume rm":
		force := len(rest) > 0 && rest[0] == "-f"
		if force {
			rest = rest[1:]
		}
		if names, ok := plain(rest); ok {
			return each(names, func(ctx context.Context, name string) error {
				// In the CLI's words, which the tests match.
				if err := c.VolumeRemove(ctx, name, force); client.IsErrNotFound(err) {
					return fmt.Errorf("Error: No such volume: %s", name)
				} else {
					return err
				}
			})
		}
	case "volume create":
		if o, ok := volumeCreateOptions(rest); ok {
			return func(ctx context.Context) (string, int, error) {
				v, err := c.VolumeCreate(ctx, o)
				return v.Name, 0, err
			}
		}
	case "plugin enable":
		if names, ok := plain(rest); ok && len(names) == 1 {
			return func(ctx context.Context) (string, int, error) {
				return names[0], 0, c.PluginEnable(ctx, names[0], types.PluginEnableOptions{Timeout: 30})
			}
		}
	case "plugin disable":
		force := len(rest) > 0 && rest[0] == "-f"
		if force {
			rest = rest[1:]
		}
		if names, ok := plain(rest); ok && len(names) == 1 {
			return func(ctx context.Context) (string, int, error) {
				return names[0], 0, c.PluginDisable(ctx, names[0], types.PluginDisableOptions{Force: force})
			}
		}
	case "run", "create":
		if r, ok := parseRun(cmd == "run", rest); ok {
			return func(ctx context.Context) (string, int, error) { return r.do(ctx, c) }
		}
	}
	return nil
}

// inspect is "inspect --format TEMPLATE NAME" of one kind of object, got by get.
func inspect(rest []string, get func(context.Context, string) (any, []byte, error)) apiCall {
	tmpl, name, ok := formatAndOne(rest)
	if !ok {
		return nil
	}
	return func(ctx context.Context) (string, int, error) {
		v, raw, err := get(ctx, name)
		if err != nil {
			return "", 1, err
		}
		return render(tmpl, v, raw)
	}
}

// formatAndOne matches "--format|-f TEMPLATE NAME".
func formatAndOne(rest []string) (tmpl, name string, ok bool) {
	if len(rest) == 3 && (rest[0] == "--format" || rest[0] == "-f") && !strings.HasPrefix(rest[2], "-") {
		return rest[1], rest[2], true
	}
	return "", "", false
}

// plain is rest when none of it is a flag.
func plain(rest []string) ([]string, bool) {
	for _, a := range rest {
		if strings.HasPrefix(a, "-") {
			return nil, false
		}
	}
	return rest, len(rest) > 0
}

// each applies op to every name, printing each done as the CLI does; the first failure ends it.
func each(names []string, op func(context.Context, string) error) apiCall {
	return func(ctx context.Context) (string, int, error) {
		var done []string
		for _, n := range names {
			if err := op(ctx, n); err != nil {
				return strings.Join(done, "\n"), 1, err
			}
			done = append(done, n)
		}
		return strings.Join(done, "\n"), 0, nil
	}
}

// templateFuncs are the docker CLI's template functions that the tests use.
var templateFuncs = template.FuncMap{
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
	"join":  strings.Join,
	"split": strings.Split,
	"lower": strings.ToLower,
	"upper": strings.ToUpper,
}

// render executes a --format template over v, as the CLI does over the same API type; where
// the type has no such field it tries the raw JSON (as the CLI does: {{.Id}} of a plugin).
func render(tmpl string, v any, raw []byte) (string, int, error) {
	t, err := template.New("").Funcs(templateFuncs).Parse(tmpl)
	if err != nil {
		return "", 1, fmt.Errorf("template parsing error: %v", err)
	}
	var b bytes.Buffer
	err = t.Execute(&b, v)
	if err != nil && raw != nil {
		var m map[string]any
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		if d.Decode(&m) == nil {
			b.Reset()
			err = t.Execute(&b, m)
		}
	}
	if err != nil {
		return "", 1, fmt.Errorf("template: %v", err)
	}
	return b.String(), 0, nil
}

// execIn is `docker exec ID CMD...`: the command's output and exit status.
func execIn(ctx context.Context, c *client.Client, id string, cmd []string) (string, int, error) {
	ex, err := c.ContainerExecCreate(ctx, id, container.ExecOptions{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return "", 1, err
	}
	att, err := c.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{})
	if err != nil {
		return "", 1, err
	}
	defer att.Close()
	var b bytes.Buffer
	if _, err := stdcopy.StdCopy(&b, &b, att.Reader); err != nil {
		return b.String(), 1, err
	}
	for {
		st, err := c.ContainerExecInspect(ctx, ex.ID)
		if err != nil {
			return b.String(), 1, err
		}
		if !st.Running {
			return b.String(), st.ExitCode, nil
		}
		select {
		case <-ctx.Done():
			return b.String(), 1, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// startAttached starts a created container with its output attached and waits for it to exit:
// `docker start -a`, or the second half of an attached `docker run` (removed, with --rm).
func startAttached(ctx context.Context, c *client.Client, id string, removed bool) (string, int, error) {
	att, err := c.ContainerAttach(ctx, id, container.AttachOptions{Stream: true, Stdout: true, Stderr: true})
	if err != nil {
		return "", 1, err
	}
	defer att.Close()
	cond := container.WaitConditionNextExit
	if removed {
		cond = container.WaitConditionRemoved
	}
	waitc, errc := c.ContainerWait(ctx, id, cond)
	if err := c.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		return "", 1, err
	}
	var b bytes.Buffer
	if _, err := stdcopy.StdCopy(&b, &b, att.Reader); err != nil && err != io.EOF {
		return b.String(), 1, err
	}
	select {
	case w := <-waitc:
		if w.Error != nil && w.Error.Message != "" {
			return b.String(), 1, fmt.Errorf("%s", w.Error.Message)
		}
		return b.String(), int(w.StatusCode), nil
	case err := <-errc:
		return b.String(), 1, err
	}
}

// volumeCreateOptions parses `volume create [-d DRIVER] [-o K=V]... NAME`.
func volumeCreateOptions(rest []string) (volume.CreateOptions, bool) {
	o := volume.CreateOptions{DriverOpts: map[string]string{}}
	for len(rest) > 1 {
		switch rest[0] {
		case "-d", "--driver":
			o.Driver = rest[1]
		case "-o", "--opt":
			k, v, ok := strings.Cut(rest[1], "=")
			if !ok {
				return o, false
			}
			o.DriverOpts[k] = v
		default:
			return o, false
		}
		rest = rest[2:]
	}
	if len(rest) != 1 || strings.HasPrefix(rest[0], "-") {
		return o, false
	}
	o.Name = rest[0]
	return o, true
}

// runArgs is a `docker run` or `docker create` the API can do: the flags the tests use.
type runArgs struct {
	run, detach, rm bool
	name            string
	config          container.Config
	host            container.HostConfig
}

func parseRun(run bool, rest []string) (*runArgs, bool) {
	r := &runArgs{run: run}
	r.config.Labels = map[string]string{}
	for len(rest) > 0 && strings.HasPrefix(rest[0], "-") {
		flag := rest[0]
		switch flag {
		case "-d", "--detach":
			r.detach = true
			rest = rest[1:]
			continue
		case "--rm":
			r.rm = true
			rest = rest[1:]
			continue
		}
		if len(rest) < 2 {
			return nil, false
		}
		val := rest[1]
		rest = rest[2:]
		switch flag {
		case "--name":
			r.name = val
		case "--network":
			r.host.NetworkMode = container.NetworkMode(val)
		case "--label", "-l":
			k, v, _ := strings.Cut(val, "=")
			r.config.Labels[k] = v
		case "-v", "--volume":
			r.host.Binds = append(r.host.Binds, val)
		case "--stop-timeout":
			n, err := strconv.Atoi(val)
			if err != nil {
				return nil, false
			}
			r.config.StopTimeout = &n
		case "--restart":
			p, err := restartPolicy(val)
			if err != nil {
				return nil, false
			}
			r.host.RestartPolicy = p
		case "--storage-opt":
			k, v, ok := strings.Cut(val, "=")
			if !ok {
				return nil, false
			}
			if r.host.StorageOpt == nil {
				r.host.StorageOpt = map[string]string{}
			}
			r.host.StorageOpt[k] = v
		default:
			return nil, false
		}
	}
	if len(rest) == 0 || (!run && (r.detach || r.rm)) {
		return nil, false
	}
	r.config.Image, r.config.Cmd = rest[0], rest[1:]
	if r.config.StopTimeout == nil {
		// busybox's sleep as a container's PID 1 ignores SIGTERM: every stop, restart and
		// dockerd shutdown would wait the engine's whole 10 s before its SIGKILL. No test
		// needs that wait; one that does says --stop-timeout.
		one := 1
		r.config.StopTimeout = &one
	}
	r.host.AutoRemove = r.rm
	if run && !r.detach {
		r.config.AttachStdout, r.config.AttachStderr = true, true
	}
	return r, true
}

func restartPolicy(v string) (container.RestartPolicy, error) {
	name, n, hasN := strings.Cut(v, ":")
	p := container.RestartPolicy{Name: container.RestartPolicyMode(name)}
	if hasN {
		c, err := strconv.Atoi(n)
		if err != nil {
			return p, err
		}
		p.MaximumRetryCount = c
	}
	return p, nil
}

func (r *runArgs) do(ctx context.Context, c *client.Client) (string, int, error) {
	created, err := c.ContainerCreate(ctx, &r.config, &r.host, nil, nil, r.name)
	if err != nil {
		return "", 125, err
	}
	switch {
	case !r.run:
		return created.ID, 0, nil
	case r.detach:
		if err := c.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
			return "", 125, err
		}
		return created.ID, 0, nil
	default:
		return startAttached(ctx, c, created.ID, r.rm)
	}
}
