// Command dmsize-plugin is the dmsize managed Docker plugin: it gives containers the root
// filesystem size their dm.size label asks for, on Docker's devicemapper graph driver.
//
// It always follows the engine's events (events mode). With MODE=strict and the plugin listed in
// the engine's "authorization-plugins", it also validates labels at `docker create` and sizes
// the device before the create response returns (docker.authz/1.0). It is also a volume
// driver (docker.volumedriver/1.0): thin volumes with a size, in a pool of its own.
package main

import "github.com/dmsize/dmsize/plugin"

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

func main() { plugin.Main(version) }
