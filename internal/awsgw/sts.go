package awsgw

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/s3err"
)

// STS bounds on AssumeRole's DurationSeconds (the upper one is the default
// MaxSessionDuration of a role and the cap for role chaining).
const (
	minRoleDuration = 15 * time.Minute
	maxRoleDuration = time.Hour
	// refreshBefore renews a grant's role credentials this long before they
	// expire, for grants that outlast maxRoleDuration.
	refreshBefore = 2 * time.Minute
)

// roleCreds assumes a target's role once per grant and caches the result,
// so that CloudTrail names the grant (RoleSessionName) and the agent
// (SourceIdentity), and the credentials can do no more than the grant's
// scope (the session policy).
type roleCreds struct {
	roleARN string
	client  *sts.Client
	now     func() time.Time

	mu      sync.Mutex
	byGrant map[string]*roleEntry
}

type roleEntry struct {
	mu    sync.Mutex // one AssumeRole at a time per grant
	creds aws.Credentials
}

func newRoleCreds(t Target, rt http.RoundTripper) (*roleCreds, error) {
	var provider aws.CredentialsProvider
	if t.AccessKeyID != "" {
		provider = credentials.NewStaticCredentialsProvider(t.AccessKeyID, t.SecretAccessKey, "")
	} else {
		// Ambient credentials; resolved (and failing, if there are none)
		// at the first AssumeRole, not here.
		cfg, err := config.LoadDefaultConfig(context.Background(), config.WithRegion(t.Region))
		if err != nil {
			return nil, fmt.Errorf("awsgw: target %q: loading ambient AWS credentials for role_arn: %w", t.Name, err)
		}
		provider = cfg.Credentials
	}
	o := sts.Options{
		Region:      t.Region,
		Credentials: aws.NewCredentialsCache(provider),
		HTTPClient:  &http.Client{Transport: rt},
	}
	if t.STSEndpoint != "" {
		o.BaseEndpoint = aws.String(t.STSEndpoint)
	}
	return &roleCreds{roleARN: t.RoleARN, client: sts.New(o), now: time.Now, byGrant: map[string]*roleEntry{}}, nil
}

func (rc *roleCreds) get(ctx context.Context, g *gateway.Grant) (aws.Credentials, error) {
	rc.mu.Lock()
	e := rc.byGrant[g.ID]
	if e == nil {
		e = &roleEntry{}
		rc.byGrant[g.ID] = e
	}
	rc.mu.Unlock()

	e.mu.Lock()
	defer e.mu.Unlock()
	now := rc.now()
	if e.creds.AccessKeyID != "" && now.Add(refreshBefore).Before(e.creds.Expires) {
		return e.creds, nil
	}
	c, err := rc.assume(ctx, g, now)
	if err != nil {
		return aws.Credentials{}, err
	}
	e.creds = c
	return c, nil
}

func (rc *roleCreds) forget(grantID string) {
	rc.mu.Lock()
	delete(rc.byGrant, grantID)
	rc.mu.Unlock()
}

// roleDuration is the grant's remaining time, rounded up to a second and
// clamped to what STS accepts.
func roleDuration(remaining time.Duration) int32 {
	d := min(max(remaining, minRoleDuration), maxRoleDuration)
	return int32((d + time.Second - 1) / time.Second)
}

// stsNameRE is what RoleSessionName and SourceIdentity accept.
var stsNameRE = regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)

func (rc *roleCreds) assume(ctx context.Context, g *gateway.Grant, now time.Time) (aws.Credentials, error) {
	policy, err := SessionPolicy(g.Scope)
	if err != nil {
		return aws.Credentials{}, err
	}
	in := &sts.AssumeRoleInput{
		RoleArn:         aws.String(rc.roleARN),
		RoleSessionName: aws.String(stsName(g.ID)),
		SourceIdentity:  aws.String(stsName(g.Identity)),
		DurationSeconds: aws.Int32(roleDuration(g.ExpiresAt.Sub(now))),
		Policy:          aws.String(policy),
	}
	out, err := rc.client.AssumeRole(ctx, in)
	if err != nil {
		// The SDK's error names the role and the STS error code, never a
		// secret.
		return aws.Credentials{}, s3err.New(s3err.ServiceUnavailable, "Airlock could not assume the target's role for grant %s: %v", g.ID, err)
	}
	c := out.Credentials
	// Empty values count as missing: signing with them would fail later,
	// as the gateway's own fault (500), where STS is what failed (503).
	if c == nil || aws.ToString(c.AccessKeyId) == "" || aws.ToString(c.SecretAccessKey) == "" || aws.ToString(c.SessionToken) == "" || c.Expiration == nil {
		return aws.Credentials{}, s3err.New(s3err.ServiceUnavailable, "STS answered AssumeRole for grant %s without credentials", g.ID)
	}
	return aws.Credentials{
		AccessKeyID: *c.AccessKeyId, SecretAccessKey: *c.SecretAccessKey, SessionToken: *c.SessionToken,
		CanExpire: true, Expires: *c.Expiration, Source: "airlock AssumeRole " + g.ID,
	}, nil
}

// stsName makes s acceptable as a RoleSessionName or SourceIdentity by
// replacing characters STS refuses; identity and grant names normally pass
// unchanged.
func stsName(s string) string {
	if stsNameRE.MatchString(s) {
		return s
	}
	b := []byte(s)
	for i, c := range b {
		ok := c == '_' || c == '+' || c == '=' || c == ',' || c == '.' || c == '@' || c == '-' ||
			(c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
		if !ok {
			b[i] = '_'
		}
	}
	for len(b) < 2 {
		b = append(b, '_')
	}
	if len(b) > 64 {
		b = b[:64]
	}
	return string(b)
}
