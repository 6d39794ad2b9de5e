package awsgw

import (
	"net"
	"net/http"
	"time"
)

// UpstreamTransport is the transport the gateway uses upstream unless
// Options.Transport says otherwise. It is tuned for a proxy: many
// concurrent streams to one or a few upstream hosts, kept alive, and bodies
// passed through untouched (no transparent gzip, which would change lengths
// and checksums). bench/s3bench gives its plain Go proxy the same one, so
// that the two differ only in the gateway's own work. The gateway itself
// (Options.Transport nil) sends bodiless GET and HEAD calls to a plain-HTTP
// upstream with h1Transport (h1.go), which takes this one's dialer and
// bounds, and everything else through it.
func UpstreamTransport() *http.Transport {
	return &http.Transport{
		Proxy: nil, // the upstream is configured explicitly; never via an env proxy
		DialContext: (&net.Dialer{
			Timeout:   10 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          512,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
		WriteBufferSize:       64 << 10,
		ReadBufferSize:        64 << 10,
	}
}
