// Command dmsize is the operator's side of the dmsize plugin: grow a container now, see what
// dmsize did, watch and extend the thin pool. It talks to the plugin's control socket, which it
// finds through the Docker API.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// version is set at build time (-X main.version=...).
var version = "dev"

// Exit codes, as `dmsize -h` documents them: scripts rely on them.
const (
	exitOK          = 0
	exitRefused     = 1
	exitUsage       = 2
	exitUnreachable = 3
)

const defaultHost = "unix:///var/run/docker.sock"

const mainUsage = `Usage: dmsize [--plugin NAME | --socket PATH] [--host URL] COMMAND [ARGS]

dmsize grows containers' root filesystems on Docker's devicemapper storage and shows what the
dmsize plugin did, through the plugin's control socket (root only).

Commands:
  grow [--dry-run] CONTAINER SIZE
      grow a container (name or ID) to SIZE: a running one online, a stopped or created one
      before its next start
  status [CONTAINER...] [--format json]
      sizes, holds and last action of containers (of all dmsize knows when none is named)
  pool status [--format json]
      the thin pool: use, room, guard
  pool extend [--metadata] SIZE|+SIZE
      extend the pool's data (or metadata) to SIZE, or by +SIZE
  volume status [NAME...] [--format json]
      dmsize's thin volumes: size, filesystem, state, mounts, use
  volume grow NAME SIZE
      grow a volume to SIZE, online if it is mounted
  metrics [--listen ADDR]
      the plugin's Prometheus metrics, once on stdout, or served at http://ADDR/metrics
  version
      the CLI's and the plugin's versions
  containerd-sync [--install-unit]
      Docker 25+ on containerd's devmapper snapshotter, on the host before containerd starts:
      write the sizes dmsize gave into containerd's records (a systemd ExecStartPre)

SIZE is Docker's size grammar, binary units: 42G = 42×2³⁰ bytes, 1.5T, 512M.
--format json prints exact bytes.

Global flags (before or after the command):
%s
Exit codes:
  0  done, or nothing to do (already that size)
  1  refused: an invalid or smaller size, over a policy or cap, no such container, or the
     operation failed
  2  usage: unknown command or flag, wrong arguments, a SIZE that is not a size
  3  cannot reach the plugin or the Docker engine (not installed, disabled, not running)

dmsize COMMAND -h describes a command.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, os.Getenv))
}

// run is the whole CLI: args without the program name, to an exit code.
func run(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	return newApp(stdout, stderr, getenv).run(args)
}

type app struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	pluginsRoot    string          // where the engine keeps its managed plugins' sockets
	tty            bool            // stderr is a terminal: show progress there
	spinAfter      time.Duration   // how long a request runs before progress shows
	ctx            context.Context // what run's context derives from (tests end it)
	listening      func(net.Addr)  // called once `metrics --listen` listens (tests)

	plugin, socket, host string // the global flags
}

func newApp(stdout, stderr io.Writer, getenv func(string) string) *app {
	return &app{stdout: stdout, stderr: stderr, getenv: getenv, pluginsRoot: pluginsRoot,
		tty: isTerminal(stderr), spinAfter: time.Second, ctx: context.Background()}
}

func (a *app) run(args []string) int {
	// Ctrl-C cancels the request, so that the progress line is erased and the error said.
	ctx, stop := signal.NotifyContext(a.ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := a.dispatch(ctx, args)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	// One line, whatever the server's message holds: scripts read stderr line by line.
	fmt.Fprintf(a.stderr, "dmsize: %s\n", oneLine(err))
	return exitCode(err)
}

// oneLine is err's message on one line, whatever it holds.
func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }

func (a *app) dispatch(ctx context.Context, args []string) error {
	fs := a.flagSet("dmsize")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(a.stdout, mainUsage, flagHelp(fs, true))
			return err
		}
		return usageErr("%v (dmsize -h)", err)
	}
	rest := fs.Args()
	if len(rest) == 0 {
		return usageErr("no command (dmsize -h lists them)")
	}
	switch cmd, args := rest[0], rest[1:]; cmd {
	case "grow":
		return a.grow(ctx, args)
	case "status":
		return a.status(ctx, args)
	case "pool":
		return a.pool(ctx, args)
	case "metrics":
		return a.metrics(ctx, args)
	case "volume":
		return a.volume(ctx, args)
	case "version":
		return a.version(ctx, args)
	case "containerd-sync":
		return a.containerdSync(ctx, args)
	case "help":
		fmt.Fprintf(a.stdout, mainUsage, flagHelp(fs, true))
		return nil
	default:
		return usageErr("unknown command %q (dmsize -h lists them)", cmd)
	}
}

// failure carries the exit code an error ends dmsize with.
type failure struct {
	code int
	err  error
}

func (f *failure) Error() string { return f.err.Error() }
func (f *failure) Unwrap() error { return f.err }

func usageErr(format string, args ...any) error {
	return &failure{exitUsage, fmt.Errorf(format, args...)}
}

func unreachableErr(format string, args ...any) error {
	return &failure{exitUnreachable, fmt.Errorf(format, args...)}
}

// flagSet is a command's flag set, with the global flags too, so that they may come after
// the command. It prints nothing itself: errors are one line, help goes to stdout.
func (a *app) flagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringVar(&a.plugin, "plugin", a.plugin, "the dmsize plugin installed as `NAME` (default: the only one installed)")
	fs.StringVar(&a.socket, "socket", a.socket, "use the control socket at `PATH`; no Docker API needed")
	fs.StringVar(&a.host, "host", a.host, "the Docker API at `URL` (default $DOCKER_HOST, else "+defaultHost+")")
	return fs
}

var globalFlags = map[string]bool{"plugin": true, "socket": true, "host": true}

// flagHelp lists fs's global flags, or the command's own, "--" style.
func flagHelp(fs *flag.FlagSet, global bool) string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fs.VisitAll(func(f *flag.Flag) {
		if globalFlags[f.Name] != global {
			return
		}
		arg, usage := flag.UnquoteUsage(f)
		fmt.Fprintf(tw, "  --%s %s\t%s\n", f.Name, arg, usage)
	})
	tw.Flush()
	return b.String()
}

// command is one (sub)command's flags and help.
type command struct {
	a        *app
	fs       *flag.FlagSet
	name     string // "grow", "pool extend"
	synopsis string
	about    string
}

func (a *app) command(name, synopsis, about string) *command {
	return &command{a: a, fs: a.flagSet(name), name: name, synopsis: synopsis, about: about}
}

// parse reads the flags anywhere among args (the flag package stops at the first argument,
// and `dmsize status web --format json` must work) and checks the argument count.
func (c *command) parse(args []string, min, max int) ([]string, error) {
	var pos []string
	for {
		if err := c.parseFlags(args); err != nil {
			return nil, err
		}
		rest := c.fs.Args()
		if len(rest) == 0 {
			break
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
	if len(pos) < min || max >= 0 && len(pos) > max {
		return nil, usageErr("%s: %d arguments %q; usage: dmsize %s", c.name, len(pos), pos, c.synopsis)
	}
	return pos, nil
}

// parseFlags reads the flags up to the first argument; -h prints the command's help.
func (c *command) parseFlags(args []string) error {
	err := c.fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		c.help()
		return err
	}
	if err != nil {
		return usageErr("%s: %v (dmsize %s -h)", c.name, err, c.name)
	}
	return nil
}

func (c *command) help() {
	fmt.Fprintf(c.a.stdout, "Usage: dmsize %s\n\n%s\n", c.synopsis, c.about)
	if flags := flagHelp(c.fs, false); flags != "" {
		fmt.Fprintf(c.a.stdout, "\nFlags:\n%s", flags)
	}
	fmt.Fprintf(c.a.stdout, "\nGlobal flags:\n%s", flagHelp(c.fs, true))
}

// formatFlag adds --format; checkFormat says whether it asks for JSON.
func (c *command) formatFlag() *string {
	return c.fs.String("format", "", "`json`: the plugin's answer as JSON, exact bytes")
}

func (c *command) checkFormat(f string) (bool, error) {
	switch f {
	case "":
		return false, nil
	case "json":
		return true, nil
	}
	return false, usageErr("%s: --format %q: the only format is json", c.name, f)
}
