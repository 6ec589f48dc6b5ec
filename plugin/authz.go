package main

import "github.com/docker/go-plugins-helpers/authorization"

// allowAll is the docker.authz/1.0 side of the plugin while it has nothing to check: it only
// matters to engines that list dmsize in "authorization-plugins", and must never get in the way.
type allowAll struct{}

func (allowAll) AuthZReq(authorization.Request) authorization.Response {
	return authorization.Response{Allow: true}
}

func (allowAll) AuthZRes(authorization.Request) authorization.Response {
	return authorization.Response{Allow: true}
}
