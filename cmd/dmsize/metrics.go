package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/dmsize/dmsize/controlapi"
)

// metrics prints the plugin's Prometheus exposition once, or serves it on the host with
// --listen: the plugin has no network of its own, only its control socket.
func (a *app) metrics(ctx context.Context, args []string) error {
	c := a.command("metrics", "metrics [--listen ADDR]",
		"Prints the plugin's Prometheus metrics once, in the text format (for node_exporter's\n"+
			"textfile collector, or a cron). With --listen, serves them at http://ADDR/metrics\n"+
			"instead, until stopped: each scrape asks the plugin's control socket, found again\n"+
			"when the plugin restarts or is reinstalled; while the plugin cannot answer (disabled,\n"+
			"not set up, the engine down) a scrape gets 503 and the reason. One line on stderr\n"+
			"each time that changes.")
	listen := c.fs.String("listen", "", "serve /metrics on `ADDR` (host:port, e.g. 127.0.0.1:9434)")
	if _, err := c.parse(args, 0, 0); err != nil {
		return err
	}
	if a.plugin != "" && a.socket != "" {
		return usageErr("metrics: --plugin and --socket: give one")
	}
	if *listen != "" {
		return a.serveMetrics(ctx, *listen)
	}
	var text []byte
	if err := a.call(ctx, "metrics", "asking the plugin", controlapi.DefaultTimeout, func(ctx context.Context, cl *controlapi.Client) (err error) {
		text, _, err = cl.Metrics(ctx)
		return err
	}); err != nil {
		return err
	}
	_, err := a.stdout.Write(text)
	return err
}

// serveMetrics serves /metrics on addr until ctx ends.
func (a *app) serveMetrics(ctx context.Context, addr string) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return usageErr("metrics: --listen %q: %v (want host:port, e.g. 127.0.0.1:9434)", addr, err)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	p := &metricsProxy{a: a}
	mux := http.NewServeMux()
	mux.Handle("GET "+controlapi.PathMetrics, p) // and HEAD
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	})
	fmt.Fprintf(a.stderr, "dmsize: metrics: serving http://%s%s from the dmsize plugin's control socket\n", l.Addr(), controlapi.PathMetrics)
	if a.listening != nil {
		a.listening(l.Addr())
	}
	p.fetch(ctx) // says at once whether the plugin answers
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}

// metricsProxy answers each scrape from the plugin's control socket.
type metricsProxy struct {
	a     *app
	mu    sync.Mutex
	sock  string // the socket last found through the engine; "" until then
	state string // what was last said on stderr
}

func (p *metricsProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	text, ct, err := p.fetch(r.Context())
	if err != nil {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "dmsize: %s\n", oneLine(err))
		return
	}
	w.Header().Set("Content-Type", ct)
	w.Write(text)
}

// fetch asks the plugin for its metrics. A socket that no longer answers is looked up again
// through the engine (the plugin was disabled, restarted or reinstalled under a new ID), once
// per scrape. Each change between answering and not, or of the reason, is one line on stderr.
func (p *metricsProxy) fetch(ctx context.Context) ([]byte, string, error) {
	ctx, cancel := context.WithTimeout(ctx, controlapi.DefaultTimeout)
	defer cancel()
	sock, fresh, err := p.socket(ctx, false)
	var text []byte
	var ct string
	if err == nil {
		text, ct, err = controlapi.NewClient(sock).Metrics(ctx)
		if errors.Is(err, controlapi.ErrUnreachable) && !fresh {
			if sock, _, err = p.socket(ctx, true); err == nil {
				text, ct, err = controlapi.NewClient(sock).Metrics(ctx)
			}
		}
	}
	state := "the plugin answers at " + sock
	if err != nil {
		err = hint(err)
		state = oneLine(err) + " (answering 503 until it does)"
	}
	p.mu.Lock()
	if state != p.state {
		p.state = state
		fmt.Fprintf(p.a.stderr, "dmsize: metrics: %s\n", state)
	}
	p.mu.Unlock()
	return text, ct, err
}

// socket is --socket's path, or the plugin's as last found; again says to ask the engine
// anew. fresh says there is nothing newer to ask the engine for: --socket's, or just found.
func (p *metricsProxy) socket(ctx context.Context, again bool) (sock string, fresh bool, err error) {
	if p.a.socket != "" {
		return p.a.socket, true, nil
	}
	p.mu.Lock()
	sock = p.sock
	p.mu.Unlock()
	if sock != "" && !again {
		return sock, false, nil
	}
	if sock, err = p.a.discover(ctx); err != nil {
		return "", true, err
	}
	p.mu.Lock()
	p.sock = sock
	p.mu.Unlock()
	return sock, true, nil
}
