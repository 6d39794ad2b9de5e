package mcpserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/airlock-dev/airlock/internal/apierr"
	"github.com/airlock-dev/airlock/internal/client"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
)

func requestInput(in RequestAccessInput) grants.RequestInput {
	return grants.RequestInput{Target: in.Target, Scope: in.Allow, Duration: in.Duration, Reason: in.Reason}
}

// checkGrantID refuses a grant id that is not one segment of the API's
// paths: "." and ".." are resolved away in the URL ("/v1/grants/./end" is
// "/v1/grants/end"), so the call would reach another endpoint or answer
// with a redirect instead of "no grant". It also refuses one longer than
// any grant id (g_ and 20 characters), which went on to the API and then
// whole into the log line of the failed call: one /mcp request wrote a
// 2 MiB line into the control plane's log.
func checkGrantID(id string) error {
	if id == "" || id == "." || id == ".." || strings.ContainsAny(id, "/?#") || len(id) > maxGrantID {
		return fmt.Errorf("grant_id: %s is not a grant id (g_...)", apierr.Quote(id))
	}
	return nil
}

// maxGrantID bounds a grant id well above the real ones' 22 bytes.
const maxGrantID = 64

func isNotFound(err error) bool {
	var ae *apierr.Error
	return errors.As(err, &ae) && ae.Status == http.StatusNotFound
}

func asAPI(err error, target **apierr.Error) bool { return errors.As(err, target) }

type clientKey struct{}

// boundClient is the API client and identity of one MCP HTTP request.
type boundClient struct {
	c   *client.Client
	who model.Identity
}

func contextWith(ctx context.Context, b *boundClient) context.Context {
	return context.WithValue(ctx, clientKey{}, b)
}
