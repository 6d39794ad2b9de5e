package awsgw

import (
	"strings"

	"github.com/airlock-dev/airlock/internal/sigv4"
)

// signedAmz reports whether the client's header named ck (canonical form)
// may go upstream as far as signing goes: any header that is not x-amz-*,
// and an x-amz-* header only if the client signed it. The verifier already
// refuses requests with unsigned x-amz-* headers (sigv4/unsigned.go); this
// keeps the forwarder from ever passing one on should a request reach it
// some other way. Headers the gateway sets itself are added after this
// filter.
func signedAmz(ck string, auth *sigv4.Auth) bool {
	if len(ck) < 6 || !strings.EqualFold(ck[:6], "x-amz-") {
		return true
	}
	for _, s := range auth.SignedHeaders {
		if strings.EqualFold(s, ck) {
			return true
		}
	}
	return false
}
