//go:build !linux

package awsgw

import "net"

// canSplice is false: elsewhere (*net.TCPConn).ReadFrom copies through a
// buffer of its own, which gains nothing over the gateway's copy.
var canSplice = false

func upstreamAlive(*net.TCPConn) bool { return false }
