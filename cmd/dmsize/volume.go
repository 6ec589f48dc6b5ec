package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/dmsize/dmsize/controlapi"
	"github.com/dmsize/dmsize/size"
)

// volume is `dmsize volume status|grow`: the plugin's thin volumes.
func (a *app) volume(ctx context.Context, args []string) error {
	c := a.command("volume", "volume status [NAME...] [--format json] | volume grow NAME SIZE",
		"status: dmsize's thin volumes (docker volume create -d dmsize -o size=20G NAME): size,\n"+
			"filesystem, state, how many containers have each mounted, and the use while mounted.\n"+
			"grow: grow volume NAME to SIZE, online if it is mounted (device and filesystem).")
	if err := c.parseFlags(args); err != nil {
		return err
	}
	rest := c.fs.Args()
	if len(rest) == 0 {
		return usageErr("volume: status or grow? (dmsize volume -h)")
	}
	switch rest[0] {
	case "status":
		return show(ctx, a.command("volume status", "volume status [NAME...] [--format json]",
			"dmsize's thin volumes, or the NAMEd ones."),
			rest[1:], -1, func(ctx context.Context, cl *controlapi.Client, names []string) ([]controlapi.Volume, error) {
				list, err := cl.Volumes(ctx, names...)
				if list == nil {
					list = []controlapi.Volume{}
				}
				return list, err
			}, writeVolumes)
	case "grow":
		return a.volumeGrow(ctx, rest[1:])
	}
	return usageErr("volume: unknown command %q (dmsize volume -h)", rest[0])
}

func writeVolumes(w io.Writer, list []controlapi.Volume) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSIZE\tFS\tSTATE\tMOUNTS\tFS SIZE\tFS USED\tDEVICE")
	for _, v := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", v.Name, short(v.SizeBytes), v.FS, v.State, v.Mounts,
			short(v.FSSizeBytes), short(v.FSUsedBytes), v.Device)
	}
	return tw.Flush()
}

func (a *app) volumeGrow(ctx context.Context, args []string) error {
	c := a.command("volume grow", "volume grow NAME SIZE",
		"Grows volume NAME to SIZE: its thin device, then its filesystem, online if a container\n"+
			"has it mounted. Never shrinks. Already that size: nothing to do, exit 0.")
	pos, err := c.parse(args, 2, 2)
	if err != nil {
		return err
	}
	name, want := pos[0], strings.TrimSpace(pos[1])
	b, rel, err := parseSize(want)
	if err == nil && rel {
		err = fmt.Errorf("size %q: grow takes the size to reach, not an increase", want)
	}
	if err != nil {
		return usageErr("volume grow %s: %v", name, err)
	}
	target := "volume " + name + " to " + size.Format(b)
	var r controlapi.VolumeGrowResult
	if err := a.call(ctx, "grow "+target, "growing "+target, growTimeout, func(ctx context.Context, cl *controlapi.Client) (err error) {
		r, err = cl.VolumeGrow(ctx, controlapi.VolumeGrowRequest{Name: name, Size: want})
		return err
	}); err != nil {
		return err
	}
	if r.Action == controlapi.ActionUnchanged {
		fmt.Fprintf(a.stdout, "volume %s: already %s\n", name, size.Format(r.Volume.SizeBytes))
		return nil
	}
	fmt.Fprintf(a.stdout, "volume %s: %s -> %s (grown%s)\n", name, size.Format(r.BeforeBytes), size.Format(r.Volume.SizeBytes), took(r.DurationMs))
	return nil
}
