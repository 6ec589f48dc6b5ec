// Package controlapi is dmsize's control API: the types and the client that both the plugin
// (which serves it on a root-only unix socket) and the dmsize CLI use. JSON over HTTP,
// versioned by path (/v1/...). Sizes are exact bytes; the CLI formats them.
package controlapi

// APIVersion prefixes every path.
const APIVersion = "v1"

// PluginSocketDir is where the engine keeps a managed plugin's sockets: inside the plugin it is
// the plugin's own; on the host each plugin has PluginSocketDir/<plugin full ID>.
const PluginSocketDir = "/run/docker/plugins"

// SocketName is the control socket's name, beside the plugin's own socket in its socket
// directory: on the host, /run/docker/plugins/<plugin id>/dmsize-control.sock.
const SocketName = "dmsize-control.sock"

// Paths, under /v1.
const (
	PathVersion    = "/" + APIVersion + "/version"
	PathContainers = "/" + APIVersion + "/containers"      // GET ?ref=NAME&ref=ID (none: every container dmsize knows)
	PathGrow       = "/" + APIVersion + "/containers/grow" // POST GrowRequest
	PathPool       = "/" + APIVersion + "/pool"            // GET
	PathPoolExtend = "/" + APIVersion + "/pool/extend"     // POST ExtendRequest
	PathVolumes    = "/" + APIVersion + "/volumes"         // GET ?name=NAME (none: every volume)
	PathVolumeGrow = "/" + APIVersion + "/volumes/grow"    // POST VolumeGrowRequest
	// PathMetrics is Prometheus' text exposition of the pool guard's and the sizer's metrics.
	// Not under /v1: the exposition format carries its own version in its Content-Type, and
	// /metrics is where Prometheus' tools look.
	PathMetrics = "/metrics" // GET
)

// Version answers PathVersion.
type Version struct {
	Plugin string `json:"plugin"` // the plugin's build version
	API    string `json:"api"`
}

// Container is what dmsize knows of one container.
type Container struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	State string `json:"state"` // running, created, exited, ...
	Label string `json:"label,omitempty"`
	// Grown is the size last asked with `dmsize grow`, if any (it wins over a smaller label).
	GrownBytes int64  `json:"grown_bytes,omitempty"`
	Device     string `json:"device,omitempty"`
	// SizeBytes is the device's live size (0 when it is not active); CachedBytes the size the
	// engine would activate it at (its in-memory size); PersistedBytes what the engine reads at
	// its next start.
	SizeBytes      int64 `json:"size_bytes"`
	CachedBytes    int64 `json:"cached_bytes"`
	PersistedBytes int64 `json:"persisted_bytes"`
	// The filesystem, when dmsize can see it (mounted, or its superblock).
	FSSizeBytes int64  `json:"fs_size_bytes,omitempty"`
	FSUsedBytes int64  `json:"fs_used_bytes,omitempty"`
	Held        bool   `json:"held"`
	LastAction  string `json:"last_action,omitempty"`
	LastError   string `json:"last_error,omitempty"`
	Updated     string `json:"updated,omitempty"` // RFC 3339, of the record
}

// GrowRequest asks for container Ref (name, short or full ID) to have Size (Docker's size
// grammar).
type GrowRequest struct {
	Ref    string `json:"ref"`
	Size   string `json:"size"`
	DryRun bool   `json:"dry_run,omitempty"`
}

// Actions a GrowResult reports.
const (
	ActionGrown     = "grown"      // the container got a larger root filesystem
	ActionUnchanged = "unchanged"  // it already had that size
	ActionWouldGrow = "would-grow" // a dry run: it would be grown
	ActionRepaired  = "repaired"   // an interrupted sizing was finished on the way
)

// GrowResult says what a grow did (or, with DryRun, would do).
type GrowResult struct {
	Container   Container `json:"container"`
	Action      string    `json:"action"` // grown, unchanged, would-grow, repaired
	BeforeBytes int64     `json:"before_bytes"`
	AfterBytes  int64     `json:"after_bytes"`
	Strategy    string    `json:"strategy,omitempty"`
	DurationMS  int64     `json:"duration_ms"`
	Message     string    `json:"message"`
}

// Pool is the thin pool as the guard sees it.
type Pool struct {
	Name              string  `json:"name"`
	Kind              string  `json:"kind"` // loop-lvm, direct-lvm, block
	DataUsedBytes     int64   `json:"data_used_bytes"`
	DataSizeBytes     int64   `json:"data_size_bytes"`
	MetaUsedBytes     int64   `json:"metadata_used_bytes"`
	MetaSizeBytes     int64   `json:"metadata_size_bytes"`
	Mode              string  `json:"mode"` // rw, out_of_data_space, ro, fail, needs_check
	RoomBytes         int64   `json:"room_bytes"`
	RoomWhy           string  `json:"room_why,omitempty"`
	Guard             string  `json:"guard"`             // on, off
	Threshold         float64 `json:"threshold"`         // a fraction: 0.8 is 80 %
	Blocked           string  `json:"blocked,omitempty"` // why the guard cannot extend, when it needs to
	ProvisionedBytes  int64   `json:"provisioned_bytes"`
	OvercommitRatio   float64 `json:"overcommit_ratio"`
	ContainersHeld    int     `json:"containers_held"`
	ContainersWithRec int     `json:"containers_recorded"`
}

// ExtendRequest asks for the pool's data (or metadata) to be Size: "60G" absolute, "+10G"
// relative to now.
type ExtendRequest struct {
	Metadata bool   `json:"metadata,omitempty"`
	Size     string `json:"size"`
}

// ExtendResult says what an extension did.
type ExtendResult struct {
	Part        string `json:"part"` // data, metadata
	BeforeBytes int64  `json:"before_bytes"`
	AfterBytes  int64  `json:"after_bytes"`
	DurationMS  int64  `json:"duration_ms"`
	Message     string `json:"message"`
}

// Error is every non-2xx answer's body. Its message names its subject first ("container web:
// grow to 60GiB: …", "pool data to +2G: …"), so a client prints it as it is.
type Error struct {
	Kind    string `json:"kind"`
	Message string `json:"error"`
}

// Error kinds, and the HTTP status each is sent with.
const (
	KindInvalid     = "invalid"     // 400: a malformed size or request
	KindNotFound    = "not_found"   // 404: no such container
	KindRefused     = "refused"     // 409: a shrink, a size over the policy, a cap
	KindUnavailable = "unavailable" // 503: the plugin is not set up (engine not reachable yet, not devicemapper)
	KindFailed      = "failed"      // 500: an operation failed; a retry may succeed
)

func (e *Error) Error() string { return e.Message }

// Volume is one of dmsize's thin volumes.
type Volume struct {
	Name      string `json:"name"`
	SizeBytes int64  `json:"size_bytes"`
	FS        string `json:"fs"`
	State     string `json:"state"` // creating, ready, removing
	Device    string `json:"device"`
	Mounts    int    `json:"mounts"` // containers that have it mounted
	// The filesystem's size and use while it is mounted.
	FSSizeBytes int64  `json:"fs_size_bytes,omitempty"`
	FSUsedBytes int64  `json:"fs_used_bytes,omitempty"`
	Created     string `json:"created"` // RFC 3339
}

// VolumeGrowRequest asks for volume Name to have Size (Docker's size grammar).
type VolumeGrowRequest struct {
	Name string `json:"name"`
	Size string `json:"size"`
}

// VolumeGrowResult says what a volume grow did (ActionGrown or ActionUnchanged).
type VolumeGrowResult struct {
	Volume      Volume `json:"volume"`
	Action      string `json:"action"`
	BeforeBytes int64  `json:"before_bytes"`
	DurationMs  int64  `json:"duration_ms"`
}
