package grants

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"time"

	"github.com/airlock-dev/airlock/internal/apierr"
	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
)

// Grant credentials are an AWS-style pair. The id is random and stored with
// the grant; the secret is derived as HMAC-SHA256(credential key, id) and
// never stored: the holder can fetch it again, a gateway can verify a
// signature made with it, and a stolen database yields no usable secret.

// credentialPrefix marks Airlock grant credentials (20 characters in all,
// like an AWS access key id).
const credentialPrefix = "AKAL"

func newCredentialID() string {
	var b [10]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("grants: crypto/rand failed: " + err.Error())
	}
	return credentialPrefix + base32.StdEncoding.EncodeToString(b[:])
}

func (s *Service) secretFor(credentialID string) string {
	m := hmac.New(sha256.New, s.credKey)
	m.Write([]byte("airlock grant credential v1\x00"))
	m.Write([]byte(credentialID))
	return base64.RawStdEncoding.EncodeToString(m.Sum(nil))[:40]
}

// sessionTokenFor derives the AWS-style session token handed out with a
// credential. Like the secret it is never stored; the AWS gateway requires
// it, so a leaked access key id and secret alone are not enough.
func (s *Service) sessionTokenFor(credentialID string) string {
	m := hmac.New(sha256.New, s.credKey)
	m.Write([]byte("airlock grant session token v1\x00"))
	m.Write([]byte(credentialID))
	return "AIRLOCK" + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// RolePasswordKey is the key the PostgreSQL gateway derives its grant
// roles' passwords from (pgroles.WithPasswordKey): a subkey of the
// credential key, so that every replica given the same credential key
// derives the same passwords, and nothing more needs provisioning. It
// reveals nothing the credential key does not already give.
func (s *Service) RolePasswordKey() []byte {
	m := hmac.New(sha256.New, s.credKey)
	m.Write([]byte("airlock pgroles password key v1"))
	return m.Sum(nil)
}

// fingerprint identifies a secret in records without revealing it.
func fingerprint(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return "sha256:" + hex.EncodeToString(sum[:8])
}

// Credentials is what `airlock credentials` hands the holder of a grant.
type Credentials struct {
	GrantID         string    `json:"grant_id"`
	Target          string    `json:"target"`
	TargetKind      string    `json:"target_kind"`
	AccessKeyID     string    `json:"access_key_id"`
	SecretAccessKey string    `json:"secret_access_key"`
	SessionToken    string    `json:"session_token"`
	Fingerprint     string    `json:"fingerprint"`
	Expiration      time.Time `json:"expiration"`
	// Endpoint says where the target's gateway listens; nil while that
	// gateway is not running.
	Endpoint *Endpoint `json:"endpoint,omitempty"`
}

// Endpoint tells a grant's holder how to reach its target through the
// gateway: what `airlock credentials --format env` and `airlock exec` put in
// the client's environment.
type Endpoint struct {
	// URL is the AWS gateway's base URL (aws targets; AWS_ENDPOINT_URL).
	URL string `json:"url,omitempty"`
	// Region is the target's region (aws targets; AWS_REGION).
	Region string `json:"region,omitempty"`
	// Host, Port, Database and SSLMode locate the PostgreSQL gateway
	// (postgres targets; PGHOST, PGPORT, PGDATABASE, PGSSLMODE).
	Host     string `json:"host,omitempty"`
	Port     int    `json:"port,omitempty"`
	Database string `json:"database,omitempty"`
	SSLMode  string `json:"sslmode,omitempty"`
	// CAPEM is the certificate to trust for the gateway's TLS when Airlock's
	// own CA issued it (AWS_CA_BUNDLE, PGSSLROOTCERT).
	CAPEM string `json:"ca_pem,omitempty"`
}

// SetEndpoint records where target's gateway listens, for Credentials.
// The server calls it once the gateway's listener is up.
func (s *Service) SetEndpoint(target string, e Endpoint) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.endpoints == nil {
		s.endpoints = map[string]*Endpoint{}
	}
	s.endpoints[target] = &e
}

// Credentials returns an active grant's credentials to its holder, and
// records that they were issued (fingerprint only).
func (s *Service) Credentials(ctx context.Context, caller model.Identity, id string) (Credentials, error) {
	g, err := s.st.Grant(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && g.Identity != caller.Name) {
		// Not yours looks the same as not there.
		return Credentials{}, apierr.NotFound("no grant %s of yours", apierr.Quote(id))
	}
	if err != nil {
		return Credentials{}, err
	}
	if g.Status == model.Active && !s.now().Before(g.ExpiresAt) {
		return Credentials{}, apierr.Conflict("grant %s has expired (at %s)", id, g.ExpiresAt.Format(time.RFC3339))
	}
	if g.Status != model.Active {
		return Credentials{}, apierr.Conflict("grant %s is %s; credentials exist only while it is active", id, g.Status)
	}
	c := Credentials{
		GrantID: g.ID, Target: g.Target, TargetKind: g.TargetKind,
		AccessKeyID: g.CredentialID, SecretAccessKey: s.secretFor(g.CredentialID),
		SessionToken: s.sessionTokenFor(g.CredentialID),
		Fingerprint:  g.CredentialFingerprint, Expiration: g.ExpiresAt,
	}
	s.mu.RLock()
	c.Endpoint = s.endpoints[g.Target]
	s.mu.RUnlock()
	data := map[string]any{"credential_id": g.CredentialID, "fingerprint": g.CredentialFingerprint}
	// Where the credentials went: the instance a reviewer compares with
	// the addresses that then used them.
	if caller.Instance != nil {
		data["instance"] = caller.Instance
	}
	// An end committed since the read above (on any replica) refuses the
	// issue rather than logging it after the grant's end.
	err = s.appendWhileActive(ctx, g.ID, auditlog.Event{Type: "grant.credentials_issued", Time: s.now(), GrantID: g.ID, Actor: caller.Name, Data: data})
	if errors.Is(err, auditlog.ErrGrantEnded) {
		return Credentials{}, apierr.Conflict("grant %s has ended; credentials exist only while it is active", id)
	}
	if err != nil {
		return Credentials{}, s.logErr("the credential issue", err)
	}
	return c, nil
}

// appendWhileActive appends ev, a record of something done under grant id
// (credentials issued, a command), only if the grant is still active when
// its batch holds the log's writer, and otherwise fails with
// auditlog.ErrGrantEnded. The caller read the grant active a moment
// before, but an end, revoke or expiry may have committed since (a Log.Do
// under the same writer), and the log must not then show the record after
// the grant's end. Log.AppendLive checks this on a shared log only: on a
// single server an MCP end_grant beside run_with_grant logged the command
// after grant.ended. A record is written once per issue or command, so
// the read in the batch costs little.
func (s *Service) appendWhileActive(ctx context.Context, id string, ev auditlog.Event) error {
	return s.log.Do(ctx, func(ctx context.Context, tx store.Tx) ([]auditlog.Event, error) {
		var status model.GrantStatus
		var err error
		if gs, ok := tx.(store.GrantStatusTx); ok {
			status, err = gs.GrantStatus(ctx, id)
		} else {
			var g model.Grant
			g, err = tx.Grant(ctx, id)
			status = g.Status
		}
		if errors.Is(err, store.ErrNotFound) || (err == nil && status != model.Active) {
			return nil, auditlog.ErrGrantEnded
		}
		if err != nil {
			return nil, err
		}
		return []auditlog.Event{ev}, nil
	})
}
