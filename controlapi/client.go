package controlapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// Client talks to a plugin's control socket.
type Client struct {
	socket string
	http   *http.Client
}

// NewClient dials socket for every request.
func NewClient(socket string) *Client {
	return &Client{socket: socket, http: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}}}
}

// ErrUnreachable wraps a failure to reach the socket at all (the dial error is wrapped too:
// errors.Is(err, syscall.EACCES) tells a socket that is root's).
var ErrUnreachable = errors.New("cannot reach the dmsize plugin")

// ErrTimeout wraps a request whose context ended before the plugin answered: the operation may
// still complete in the plugin.
var ErrTimeout = errors.New("timed out")

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	b, _, err := c.roundTrip(ctx, method, path, body, "")
	if err != nil || out == nil {
		return err
	}
	return json.Unmarshal(b, out)
}

// roundTrip sends one request and returns a 2xx answer's body and Content-Type; any other
// answer is an *Error.
func (c *Client) roundTrip(ctx context.Context, method, path string, body io.Reader, accept string) ([]byte, string, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://dmsize"+path, body)
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, "", fmt.Errorf("%w: no answer from the dmsize plugin at %s: %w", ErrTimeout, c.socket, ctx.Err())
		}
		return nil, "", fmt.Errorf("%w at %s: %w", ErrUnreachable, c.socket, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		if ctx.Err() != nil {
			return nil, "", fmt.Errorf("%w: the dmsize plugin at %s stopped answering: %w", ErrTimeout, c.socket, ctx.Err())
		}
		return nil, "", fmt.Errorf("%w at %s: %v", ErrUnreachable, c.socket, err)
	}
	if resp.StatusCode/100 != 2 {
		e := &Error{}
		if json.Unmarshal(b, e) != nil || e.Message == "" {
			e = &Error{Kind: KindFailed, Message: fmt.Sprintf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(b))}
		}
		return nil, "", e
	}
	return b, resp.Header.Get("Content-Type"), nil
}

// call does one request and decodes its answer into a new T. (Not `var v T; return v,
// c.do(..., &v)`: Go does not order reading v against the call.)
func call[T any](ctx context.Context, c *Client, method, path string, body any) (T, error) {
	var v T
	err := c.do(ctx, method, path, body, &v)
	return v, err
}

// Version asks the plugin's version.
func (c *Client) Version(ctx context.Context) (Version, error) {
	return call[Version](ctx, c, http.MethodGet, PathVersion, nil)
}

// Containers returns the status of refs, or of every container dmsize knows when none.
func (c *Client) Containers(ctx context.Context, refs ...string) ([]Container, error) {
	return call[[]Container](ctx, c, http.MethodGet, withQuery(PathContainers, "ref", refs), nil)
}

// withQuery is path with key=value for each of values.
func withQuery(path, key string, values []string) string {
	if len(values) == 0 {
		return path
	}
	return path + "?" + url.Values{key: values}.Encode()
}

// Grow grows a container. It can take as long as the engine takes to mount a stopped
// container and the filesystem to grow: ctx bounds it.
func (c *Client) Grow(ctx context.Context, r GrowRequest) (GrowResult, error) {
	return call[GrowResult](ctx, c, http.MethodPost, PathGrow, r)
}

// Pool returns the pool's status.
func (c *Client) Pool(ctx context.Context) (Pool, error) {
	return call[Pool](ctx, c, http.MethodGet, PathPool, nil)
}

// Extend extends the pool.
func (c *Client) Extend(ctx context.Context, r ExtendRequest) (ExtendResult, error) {
	return call[ExtendResult](ctx, c, http.MethodPost, PathPoolExtend, r)
}

// Volumes returns the status of the named volumes, or of every volume when none.
func (c *Client) Volumes(ctx context.Context, names ...string) ([]Volume, error) {
	return call[[]Volume](ctx, c, http.MethodGet, withQuery(PathVolumes, "name", names), nil)
}

// VolumeGrow grows a volume, online if it is mounted.
func (c *Client) VolumeGrow(ctx context.Context, r VolumeGrowRequest) (VolumeGrowResult, error) {
	return call[VolumeGrowResult](ctx, c, http.MethodPost, PathVolumeGrow, r)
}

// MetricsAccept asks PathMetrics for Prometheus' text format, which every scraper and
// node_exporter's textfile collector read.
const MetricsAccept = "text/plain; version=0.0.4"

// Metrics returns the plugin's Prometheus exposition, as text, and its Content-Type.
func (c *Client) Metrics(ctx context.Context) (text []byte, contentType string, err error) {
	return c.roundTrip(ctx, http.MethodGet, PathMetrics, nil, MetricsAccept)
}

// DefaultTimeout bounds a CLI request that changes nothing.
const DefaultTimeout = 30 * time.Second
