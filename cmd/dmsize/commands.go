package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dmsize/dmsize/controlapi"
	"github.com/dmsize/dmsize/size"
)

// growTimeout bounds a request that changes something: a stopped container's grow waits for
// the engine to mount it, and a pool extension may run the host's lvm.
const growTimeout = 10 * time.Minute

func exitCode(err error) int {
	var f *failure
	if errors.As(err, &f) {
		return f.code
	}
	if errors.Is(err, controlapi.ErrUnreachable) || errors.Is(err, controlapi.ErrTimeout) {
		return exitUnreachable
	}
	var ce *controlapi.Error
	if errors.As(err, &ce) && ce.Kind == controlapi.KindUnavailable {
		return exitUnreachable
	}
	return exitRefused
}

// call runs fn against the plugin within timeout, with doing as its progress line; an error
// says what was asked.
func (a *app) call(ctx context.Context, what, doing string, timeout time.Duration, fn func(context.Context, *controlapi.Client) error) error {
	c, err := a.client(ctx)
	if err == nil {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		err = a.progress(doing, func() error { return fn(ctx, c) })
	}
	var ce *controlapi.Error
	if errors.As(err, &ce) && (strings.HasPrefix(ce.Message, "container ") || strings.HasPrefix(ce.Message, "pool ")) {
		return err // the plugin named the container or the pool's part, and the size, itself
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, hint(err))
	}
	return nil
}

// show is a read-only command: its arguments, the plugin's answer, then JSON or text.
func show[T any](ctx context.Context, c *command, args []string, max int, fetch func(context.Context, *controlapi.Client, []string) (T, error), text func(io.Writer, T) error) error {
	format := c.formatFlag()
	pos, err := c.parse(args, 0, max)
	if err != nil {
		return err
	}
	asJSON, err := c.checkFormat(*format)
	if err != nil {
		return err
	}
	var v T
	what := strings.Join(append([]string{c.name}, pos...), " ")
	if err := c.a.call(ctx, what, "asking the plugin", controlapi.DefaultTimeout, func(ctx context.Context, cl *controlapi.Client) (err error) {
		v, err = fetch(ctx, cl, pos)
		return err
	}); err != nil {
		return err
	}
	if asJSON {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		_, err = c.a.stdout.Write(append(b, '\n'))
		return err
	}
	return text(c.a.stdout, v)
}

func (a *app) grow(ctx context.Context, args []string) error {
	c := a.command("grow", "grow [--dry-run] CONTAINER SIZE",
		"Grows CONTAINER's root filesystem (name or ID) to SIZE: a running container online, its\n"+
			"process running on; a stopped or created one before its next start. It keeps the size\n"+
			"as a dm.size label would, and wins over a smaller label. The plugin's MAX_SIZE and\n"+
			"OVERCOMMIT apply. Already that size: nothing to do, exit 0.")
	dry := c.fs.Bool("dry-run", false, "say what it would do; change nothing")
	pos, err := c.parse(args, 2, 2)
	if err != nil {
		return err
	}
	ref, want := pos[0], strings.TrimSpace(pos[1])
	b, rel, err := parseSize(want)
	if err == nil && rel {
		// Docker's grammar reads "+10G" as 10G: not the increase it looks like.
		err = fmt.Errorf("size %q: grow takes the size to reach, not an increase", want)
	}
	if err != nil {
		return usageErr("grow %s: %v", ref, err)
	}
	target := ref + " to " + size.Format(b)
	doing := "growing " + target
	if *dry {
		doing = "checking a grow of " + target
	}
	var r controlapi.GrowResult
	if err := a.call(ctx, "grow "+target, doing, growTimeout, func(ctx context.Context, cl *controlapi.Client) (err error) {
		r, err = cl.Grow(ctx, controlapi.GrowRequest{Ref: ref, Size: want, DryRun: *dry})
		return err
	}); err != nil {
		return err
	}
	who := ref
	if r.Container.ID != "" {
		who = describe(r.Container)
	}
	from, to := size.Format(r.BeforeBytes), size.Format(r.AfterBytes)
	switch r.Action {
	case controlapi.ActionUnchanged:
		fmt.Fprintf(a.stdout, "%s: already %s\n", who, to)
	case controlapi.ActionWouldGrow:
		fmt.Fprintf(a.stdout, "would grow %s: %s -> %s (nothing changed)\n", who, from, to)
	default: // grown, repaired
		fmt.Fprintf(a.stdout, "%s: %s -> %s (%s%s)\n", who, from, to, r.Action, took(r.DurationMS))
	}
	return nil
}

func (a *app) status(ctx context.Context, args []string) error {
	c := a.command("status", "status [CONTAINER...] [--format json]",
		"What dmsize knows of each CONTAINER (name or ID), or of every container it knows: its\n"+
			"label, the device's live size (- when not active), the filesystem's size and use, the\n"+
			"engine's cached size (what it activates the device at), whether dmsize holds the\n"+
			"device open, and the last action or error.")
	return show(ctx, c, args, -1, func(ctx context.Context, cl *controlapi.Client, refs []string) ([]controlapi.Container, error) {
		list, err := cl.Containers(ctx, refs...)
		if list == nil {
			list = []controlapi.Container{} // JSON: [], not null
		}
		return list, err
	}, writeContainers)
}

func writeContainers(w io.Writer, list []controlapi.Container) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tCONTAINER\tSTATE\tLABEL\tSIZE\tFS SIZE\tFS USED\tCACHED\tHELD\tLAST")
	for _, ct := range list {
		held := "no"
		if ct.Held {
			held = "yes"
		}
		last := ct.LastAction // or the error, which says more; one cell, whatever the text holds
		if ct.LastError != "" {
			last = strings.Join(strings.Fields(ct.LastError), " ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", dash(ct.Name), shortID(ct.ID), dash(ct.State),
			dash(ct.Label), short(ct.SizeBytes), short(ct.FSSizeBytes), short(ct.FSUsedBytes), short(ct.CachedBytes),
			held, dash(last))
	}
	return tw.Flush()
}

func (a *app) pool(ctx context.Context, args []string) error {
	c := a.command("pool", "pool status [--format json] | pool extend [--metadata] SIZE|+SIZE",
		"status: the thin pool as the plugin's guard sees it.\n"+
			"extend: extend the pool now, through the guard's extenders and checks.\n"+
			"dmsize pool status -h and dmsize pool extend -h say more.")
	if err := c.parseFlags(args); err != nil {
		return err
	}
	rest := c.fs.Args()
	if len(rest) == 0 {
		return usageErr("pool: status or extend? (dmsize pool -h)")
	}
	switch rest[0] {
	case "status":
		return show(ctx, a.command("pool status", "pool status [--format json]",
			"The thin pool: data and metadata use, what it can still grow by (room), the guard's\n"+
				"state and why it is blocked, if it is, and how far the containers' sizes over-commit it."),
			rest[1:], 0, func(ctx context.Context, cl *controlapi.Client, _ []string) (controlapi.Pool, error) {
				return cl.Pool(ctx)
			}, writePool)
	case "extend":
		return a.poolExtend(ctx, rest[1:])
	}
	return usageErr("pool: unknown command %q (dmsize pool -h)", rest[0])
}

func writePool(w io.Writer, p controlapi.Pool) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "pool\t%s (%s)\n", dash(p.Name), dash(p.Kind))
	fmt.Fprintf(tw, "data\t%s of %s used (%s)\n", size.Short(p.DataUsedBytes), size.Short(p.DataSizeBytes), percent(p.DataUsedBytes, p.DataSizeBytes))
	fmt.Fprintf(tw, "metadata\t%s of %s used (%s)\n", size.Short(p.MetaUsedBytes), size.Short(p.MetaSizeBytes), percent(p.MetaUsedBytes, p.MetaSizeBytes))
	fmt.Fprintf(tw, "mode\t%s\n", dash(p.Mode))
	room := size.Short(p.RoomBytes)
	if p.RoomWhy != "" {
		room += " (" + p.RoomWhy + ")"
	}
	fmt.Fprintf(tw, "room\t%s\n", room)
	fmt.Fprintf(tw, "guard\t%s, threshold %g%%\n", dash(p.Guard), p.Threshold*100)
	if p.Blocked != "" {
		fmt.Fprintf(tw, "blocked\t%s\n", p.Blocked)
	}
	fmt.Fprintf(tw, "over-commit\t%.2f× (%s provisioned)\n", p.OvercommitRatio, size.Short(p.ProvisionedBytes))
	fmt.Fprintf(tw, "containers\t%d held, %d with records\n", p.ContainersHeld, p.ContainersWithRec)
	return tw.Flush()
}

func (a *app) poolExtend(ctx context.Context, args []string) error {
	c := a.command("pool extend", "pool extend [--metadata] SIZE|+SIZE",
		"Extends the pool's data (or metadata) to SIZE, or by +SIZE, now, through the guard's\n"+
			"extenders: the same caps and checks (MAX_POOL_SIZE, MIN_HOST_FREE); a refusal names\n"+
			"the setting. Already that size: nothing to do, exit 0.")
	meta := c.fs.Bool("metadata", false, "extend the metadata, not the data")
	pos, err := c.parse(args, 1, 1)
	if err != nil {
		return err
	}
	part := "data"
	if *meta {
		part = "metadata"
	}
	want := strings.TrimSpace(pos[0])
	b, rel, err := parseSize(want)
	if err != nil {
		return usageErr("pool extend %s: %v", part, err)
	}
	target := "to " + size.Format(b)
	if rel {
		target = "by " + size.Format(b)
	}
	var r controlapi.ExtendResult
	if err := a.call(ctx, "pool extend "+part+" "+target, "extending the pool's "+part+" "+target, growTimeout,
		func(ctx context.Context, cl *controlapi.Client) (err error) {
			r, err = cl.Extend(ctx, controlapi.ExtendRequest{Metadata: *meta, Size: want})
			return err
		}); err != nil {
		return err
	}
	if r.Part == "" {
		r.Part = part
	}
	switch {
	case r.AfterBytes != r.BeforeBytes:
		fmt.Fprintf(a.stdout, "pool %s: %s -> %s (extended%s)\n", r.Part, size.Format(r.BeforeBytes), size.Format(r.AfterBytes), took(r.DurationMS))
	case r.Message != "": // it says why: a smaller size, or a cap the blocks do not reach
		fmt.Fprintln(a.stdout, r.Message)
	default:
		fmt.Fprintf(a.stdout, "pool %s: already %s\n", r.Part, size.Format(r.AfterBytes))
	}
	return nil
}

func (a *app) version(ctx context.Context, args []string) error {
	c := a.command("version", "version", "The CLI's version, then the plugin's.")
	if _, err := c.parse(args, 0, 0); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "cli     %s\n", version)
	var v controlapi.Version
	err := a.call(ctx, "plugin version", "asking the plugin", controlapi.DefaultTimeout, func(ctx context.Context, cl *controlapi.Client) (err error) {
		v, err = cl.Version(ctx)
		return err
	})
	if err != nil {
		if exitCode(err) == exitRefused { // any answer but a version: the plugin's is unavailable
			return &failure{exitUnreachable, err}
		}
		return err
	}
	fmt.Fprintf(a.stdout, "plugin  %s (control API %s)\n", v.Plugin, v.API)
	return nil
}

// parseSize checks a SIZE before the plugin is asked; rel says it began with '+'.
func parseSize(s string) (b int64, rel bool, err error) {
	rest, rel := strings.CutPrefix(s, "+")
	if strings.HasPrefix(rest, "+") {
		rest = s // "++1G": Parse says it is not a size
	}
	b, err = size.Parse(rest)
	return b, rel, err
}

// describe is "web (1de44219f8fd)".
func describe(ct controlapi.Container) string {
	if ct.Name == "" {
		return shortID(ct.ID)
	}
	return ct.Name + " (" + shortID(ct.ID) + ")"
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return dash(id)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// short is a table's size: short, and - for none (a device not active, a filesystem unseen).
func short(b int64) string {
	if b == 0 {
		return "-"
	}
	return size.Short(b)
}

func percent(used, total int64) string {
	if total <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", float64(used)*100/float64(total))
}

// took is " in 1.2s", or nothing when the plugin did not time it.
func took(ms int64) string {
	switch {
	case ms <= 0:
		return ""
	case ms < 1000:
		return fmt.Sprintf(" in %dms", ms)
	}
	return fmt.Sprintf(" in %.1fs", float64(ms)/1000)
}
