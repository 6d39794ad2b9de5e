package grants

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/internal/apierr"
	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/findings"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
)

// Identity binding outcomes (config identity_binding).
const (
	BindingRecord = "record"
	BindingRefuse = "refuse"
)

func (s *Service) refuses(identity string) bool {
	return s.binding != nil && s.binding(identity) == BindingRefuse
}

// ObserveCall notes an agent's API call by caller from caller.Instance. When the
// identity is active from another instance within the window it records a
// shared-identity finding (once per identity+instance pair per window) and,
// under identity_binding: refuse, refuses the call with a 403.
func (s *Service) ObserveCall(ctx context.Context, caller model.Identity) error {
	// People sign in from a laptop and a phone; sharing is an agent's
	// problem (DESIGN: "one identity per agent").
	if s.findings == nil || caller.Instance == nil || caller.Kind != model.Agent {
		return nil
	}
	// Under refuse, a refused instance is never noted as active
	// (Detector.Observe), not even while its finding is being written.
	refuse := s.refuses(caller.Name)
	others, report := s.findings.Observe(caller.Name, *caller.Instance, refuse)
	key := findings.Key(*caller.Instance)
	if len(others) == 0 {
		s.tellSighting(ctx, caller.Name, key) // findingsync.go
		return nil
	}
	if report {
		f := model.Finding{
			Kind: model.FindingSharedIdentity, At: s.now(), Identity: caller.Name,
			Instance: findings.Describe(*caller.Instance), Others: findings.Sample(others), Refused: refuse,
			Detail: fmt.Sprintf("identity %s is active from %d instances within %s", caller.Name, len(others)+1, s.findings.Window()),
		}
		if err := s.recordFinding(ctx, f); err != nil {
			// Counted as reported by Observe: the retry must raise it.
			s.findings.Unreport(findings.SharedKey(caller.Name, findings.ReportKey(*caller.Instance)))
			return err
		}
		s.tellReported(ctx, caller.Name, findings.ReportKey(*caller.Instance))
	}
	if refuse {
		// A refused instance did not act: it is not noted (Observe), and
		// the others are not told of it.
		return apierr.Forbidden("", "identity %s is already in use from another instance within the last %s, and identity_binding is refuse: "+
			"every agent instance needs its own identity", caller.Name, s.findings.Window())
	}
	s.tellSighting(ctx, caller.Name, key)
	return nil
}

// seedFindings gives the findings detector, which keeps the instances it
// has seen in memory, the instances that requested grants within its
// window, from the grants' records. Without it a restart forgot every
// instance: a second instance of an identity went unflagged, and under
// identity_binding: refuse whichever instance called first after the
// restart was let in and the one that was there before it was refused.
// Only requests are stored with their instance (other API calls are not
// recorded), so an instance that only read since its last request within
// the window is not known after a restart.
func (s *Service) seedFindings(ctx context.Context) error {
	if s.findings == nil {
		return nil
	}
	since := s.now().Add(-s.findings.Window())
	gs, err := s.st.Grants(ctx, store.GrantFilter{Since: since, RecordsOnly: true})
	if err != nil {
		return err
	}
	n := 0
	for _, g := range gs {
		if g.IdentityKind != model.Agent || g.RequestedFrom == nil || g.RequestedAt.Before(since) {
			continue
		}
		// The record's time is the database's; the detector runs on this
		// replica's own clock (dbclock.go).
		s.findings.NoteAt(g.Identity, findings.Key(*g.RequestedFrom), g.RequestedAt.Add(-s.dbc.get()))
		n++
	}
	if n > 0 {
		s.logger.Info("instances seen within the findings window noted from recent requests", "requests", n, "window", s.findings.Window())
	}
	return nil
}

// sharedAtRequest returns the shared-identity finding a new grant of
// caller carries when the identity is active from several instances.
func (s *Service) sharedAtRequest(caller model.Identity, g model.Grant) *model.Finding {
	if s.findings == nil || caller.Instance == nil {
		return nil
	}
	active := s.findings.Active(caller.Name)
	if len(active) < 2 {
		return nil
	}
	me := findings.Key(*caller.Instance)
	var others []string
	for _, a := range active {
		if a != me {
			others = append(others, a)
		}
	}
	return &model.Finding{
		Kind: model.FindingSharedIdentity, At: g.RequestedAt, Identity: caller.Name, Grant: g.ID,
		Instance: findings.Describe(*caller.Instance), Others: findings.Sample(others),
		Detail: fmt.Sprintf("requested while identity %s is active from %d instances", caller.Name, len(active)),
	}
}

// checkMoved compares a gateway session's client with the instance that
// requested grant g. It returns a *gateway.RefusedError under
// identity_binding: refuse.
func (s *Service) checkMoved(ctx context.Context, g *gateway.Grant, client, session string) error {
	if s.findings == nil {
		return nil
	}
	from := s.auth.From(g.ID)
	if from == nil {
		// Not known in memory: the grant's record says.
		rec, err := s.st.Grant(ctx, g.ID)
		if err != nil || rec.RequestedFrom == nil {
			return nil // nothing to compare with (a grant from before fingerprints)
		}
		from = rec.RequestedFrom
	}
	// The gateway passes the client certificate's fingerprint with the
	// session's start (gateway.WithTLSClient), not in client, which is the
	// peer's to write (its user agent).
	in := gatewayClient(client, gateway.TLSClientOf(ctx))
	moved, report := s.findings.Moved(g.ID, *from, in)
	if !moved {
		return s.gatewayActive(ctx, g, *from, session)
	}
	refuse := s.refuses(g.Identity)
	if report {
		f := model.Finding{
			Kind: model.FindingCredentialMoved, At: s.now(), Identity: g.Identity, Grant: g.ID, Session: session,
			Instance: findings.Describe(in), Others: []string{findings.Describe(*from)}, Refused: refuse,
			Detail: fmt.Sprintf("grant %s was requested from %s and its credentials are used from %s", g.ID, findings.MovedInstance(*from), findings.MovedInstance(in)),
		}
		if refuse {
			f.Session = "" // the session is never started
		}
		if err := s.recordFinding(ctx, f); err != nil {
			s.findings.Unreport(findings.MovedKey(g.ID, findings.MovedReport(in)))
			return err
		}
	}
	if refuse {
		return &gateway.RefusedError{Reason: fmt.Sprintf("the credentials of grant %s are used from %s, not from the instance that requested them, and identity_binding is refuse", g.ID, findings.MovedInstance(in))}
	}
	return nil
}

// gatewayClient is the instance of a gateway session's client: client's
// address and user agent (as the gateway writes client) and the TLS client
// certificate's fingerprint tlsClient.
func gatewayClient(client, tlsClient string) model.Instance {
	in := model.Instance{IP: findings.IPOf(client), TLSClient: tlsClient}
	if _, ua, ok := strings.Cut(client, " "); ok {
		in.UserAgent = findings.Printable(ua)
	}
	return in
}

// gatewayActive counts a gateway session of g, from the address of the
// instance that requested it, as that instance being active, as an API call
// is (ObserveCall): an agent's identity is in use while its grant's
// credentials are, and another instance active meanwhile is a
// shared-identity finding. Without it, an instance that requested a grant
// and then worked only through the gateway for hours looked idle once the
// window passed, and a second instance calling the API meanwhile went
// unflagged. At a session's start it records the finding (on the grant)
// and, under identity_binding: refuse, refuses the session.
func (s *Service) gatewayActive(ctx context.Context, g *gateway.Grant, from model.Instance, session string) error {
	if s.dir == nil {
		return nil
	}
	if id, ok := s.dir.Lookup(g.Identity); !ok || id.Kind != model.Agent {
		return nil // people work from several devices (ObserveCall)
	}
	refuse := s.refuses(g.Identity)
	others, report := s.findings.Observe(g.Identity, from, refuse)
	key := findings.Key(from)
	if len(others) == 0 {
		s.tellSighting(ctx, g.Identity, key)
		return nil
	}
	if report {
		f := model.Finding{
			Kind: model.FindingSharedIdentity, At: s.now(), Identity: g.Identity, Grant: g.ID, Session: session,
			Instance: findings.Describe(from), Others: findings.Sample(others), Refused: refuse,
			Detail: fmt.Sprintf("identity %s is active from %d instances within %s (a gateway session of grant %s)", g.Identity, len(others)+1, s.findings.Window(), g.ID),
		}
		if refuse {
			f.Session = "" // the session is never started
		}
		if err := s.recordFinding(ctx, f); err != nil {
			// Counted as reported by Observe: the retry must raise it.
			s.findings.Unreport(findings.SharedKey(g.Identity, findings.ReportKey(from)))
			return err
		}
		s.tellReported(ctx, g.Identity, findings.ReportKey(from))
	}
	if refuse {
		return &gateway.RefusedError{Reason: fmt.Sprintf("identity %s is already in use from another instance within the last %s, and identity_binding is refuse: every agent instance needs its own identity", g.Identity, s.findings.Window())}
	}
	s.tellSighting(ctx, g.Identity, key)
	return nil
}

// sessionActive keeps the instance that requested g noted as active while
// a session of g from that instance is in use (sessions.Options.Active, at
// most once a minute per session), so that a long session counts as
// activity, not only its start. It only notes: the finding, if any, is
// the next call's of another instance. A session from another instance
// (another address, or at its address another client certificate, as
// checkMoved compares them: findings.MovedFrom) is credential-moved, found
// at its start, not activity of the requester: before, the address alone
// was compared, so another agent instance on the requester's host kept the
// requester "active" while it worked.
func (s *Service) sessionActive(g *gateway.Grant, _, client, tlsClient string) {
	if s.findings == nil || s.dir == nil {
		return
	}
	from := s.auth.From(g.ID)
	if from == nil || findings.MovedFrom(*from, gatewayClient(client, tlsClient)) {
		return
	}
	if id, ok := s.dir.Lookup(g.Identity); !ok || id.Kind != model.Agent {
		return
	}
	key := findings.Key(*from)
	s.findings.Note(g.Identity, key)
	if s.rep.notifier == nil {
		return
	}
	// Telling the other replicas is a notification at most every quarter
	// window (tellSighting); never on the gateway's call path.
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.tellSighting(ctx, g.Identity, key)
	}()
}

// MaxGrantFindings bounds the findings a grant's record holds. Each new
// address its credentials are used from (credential-moved, refused or
// not), and each new instance of its identity while it is open
// (shared-identity), is a finding; without a bound, leaked credentials
// used from a range of addresses grew the grant's row by one finding per
// address, the whole row rewritten each time. Past it a finding about the
// grant is still recorded in the log and listed by airlock findings,
// naming the grant, but is not added to its record.
const MaxGrantFindings = 20

// maxFindingGrants bounds the open grants an identity's finding is added
// to: each is a write and a log entry, and pending requests cost an agent
// nothing to make. Active grants come first.
const maxFindingGrants = 20

// recordFinding writes a "finding" event and, for a grant's finding, adds it
// to the grant's record in the same transaction. A shared-identity finding
// raised by a plain API call names no grant; it goes on each of the
// identity's open grants instead (one entry per grant, naming it), since
// DESIGN has findings "show on the grant in the review": before, an active
// grant of an identity that a second instance then used showed nothing.
// Only an identity with no open grant gets the finding on no grant.
func (s *Service) recordFinding(ctx context.Context, f model.Finding) error {
	var open []string
	if f.Grant == "" && f.Kind == model.FindingSharedIdentity {
		var err error
		if open, err = s.openGrantsOf(ctx, f.Identity); err != nil {
			return s.logErr("the finding", err)
		}
	}
	dup := false
	var on []string
	err := s.log.Do(ctx, func(ctx context.Context, tx store.Tx) ([]auditlog.Event, error) {
		on = on[:0]
		if f.Grant == "" {
			var evs []auditlog.Event
			for _, id := range open {
				g, err := grantRecord(ctx, tx, id)
				if err != nil {
					return nil, err
				}
				if g.Status.Final() || len(g.Findings) >= MaxGrantFindings {
					continue // ended since it was listed, or holds enough
				}
				gf := f
				gf.Grant = id
				g.Findings = append(g.Findings, gf)
				if err := tx.UpdateGrant(ctx, g); err != nil {
					return nil, err
				}
				evs = append(evs, auditlog.Event{Type: "finding", Time: f.At, GrantID: id, Actor: "airlock", Data: gf})
				on = append(on, id)
			}
			if len(evs) == 0 {
				evs = []auditlog.Event{{Type: "finding", Time: f.At, Actor: "airlock", Data: f}}
			}
			return evs, nil
		}
		g, err := grantRecord(ctx, tx, f.Grant)
		if err != nil {
			return nil, err
		}
		if movedBefore(g, f) {
			// Another replica recorded it (each remembers only its own):
			// once per grant and address, as on one.
			dup = true
			return nil, nil
		}
		if len(g.Findings) >= MaxGrantFindings {
			// On the log only: the entry names no grant (the review
			// derives the grant's findings from those that do), its data
			// still does.
			of := f
			of.Detail += fmt.Sprintf("; not added to the grant's record, which holds %d findings already", len(g.Findings))
			return []auditlog.Event{{Type: "finding", Time: f.At, Actor: "airlock", Data: of}}, nil
		}
		g.Findings = append(g.Findings, f)
		ev := []auditlog.Event{{Type: "finding", Time: f.At, GrantID: f.Grant, Actor: "airlock", Data: f}}
		return ev, tx.UpdateGrant(ctx, g)
	})
	if err != nil {
		return s.logErr("the finding", err)
	}
	if dup {
		return nil
	}
	grant := f.Grant
	if len(on) > 0 {
		grant = strings.Join(on, ",")
	}
	s.logger.Warn("finding", "kind", f.Kind, "identity", f.Identity, "grant", grant, "instance", f.Instance, "refused", f.Refused)
	return nil
}

// grantRecord reads grant id in tx for a write of its record alone, as
// recordFinding's: its status and findings, then UpdateGrant, which
// ignores Usage. Where the store can (store.GrantRecordTx, both stores) it
// reads the record without summing the usage: tx.Grant read every session
// of the grant, in the log's writer that every gateway's records wait on,
// once per finding, so a grant of thousands of sessions whose credentials
// leaked cost that many rows per new address (quadratic over its
// findings).
func grantRecord(ctx context.Context, tx store.Tx, id string) (model.Grant, error) {
	if gr, ok := tx.(store.GrantRecordTx); ok {
		return gr.GrantRecord(ctx, id)
	}
	return tx.Grant(ctx, id)
}

// openGrantsOf returns the ids of identity's open grants, active ones
// first, at most maxFindingGrants of them.
func (s *Service) openGrantsOf(ctx context.Context, identity string) ([]string, error) {
	gs, err := s.st.Grants(ctx, store.GrantFilter{Identity: identity, Status: []model.GrantStatus{model.Active, model.Pending}, RecordsOnly: true})
	if err != nil {
		return nil, err
	}
	var active, pending []string
	for _, g := range gs {
		if g.Status == model.Active {
			active = append(active, g.ID)
		} else {
			pending = append(pending, g.ID)
		}
	}
	ids := append(active, pending...)
	if len(ids) > maxFindingGrants {
		ids = ids[:maxFindingGrants]
	}
	return ids, nil
}

// movedBefore says whether grant g already holds a credential-moved
// finding from f's address, and with a client certificate if f's has one
// (findings.MovedReportOf: read in the write transaction, so replicas that
// both saw the credential used from it record it once).
func movedBefore(g model.Grant, f model.Finding) bool {
	if f.Kind != model.FindingCredentialMoved {
		return false
	}
	for _, old := range g.Findings {
		if old.Kind == model.FindingCredentialMoved && findings.MovedReportOf(old.Instance) == findings.MovedReportOf(f.Instance) {
			return true
		}
	}
	return false
}

// Bounds of a page of findings (Findings).
const (
	// DefaultFindingsPage is the findings a page holds when the caller
	// names no limit.
	DefaultFindingsPage = 100
	// MaxFindingsPage is the most a caller may ask for in one page. Every
	// new address a shared key or moved credential is used from is a
	// finding, so a day's findings are the attacker's to multiply: the
	// whole list in one answer grew the server's memory, the answer and
	// the CLI's memory without bound.
	MaxFindingsPage = 1000
	// findingsScan bounds the log entries one page reads, whatever it
	// keeps: an agent sees only its own findings and a day only its own,
	// so a page of a few of them among many others would otherwise read
	// them all. A page that stops there has fewer findings than its limit
	// (possibly none) and a cursor to go on from.
	findingsScan = 10 * MaxFindingsPage
)

// FindingsQuery selects a page of findings.
type FindingsQuery struct {
	Day string // UTC, YYYY-MM-DD; "" for every day
	// After is the cursor: the page starts after the log entry of this
	// sequence number (FindingsPage.Next of the page before); 0 from the
	// start.
	After int64
	// Limit is the most findings the page holds: 1 to MaxFindingsPage,
	// DefaultFindingsPage if 0, MaxFindingsPage if more.
	Limit int
}

// FindingsPage is one page of findings.
type FindingsPage struct {
	Findings []model.Finding
	// Next is the cursor of the next page (FindingsQuery.After), or 0 when
	// the log holds nothing more for the query.
	Next int64
}

// Findings lists a page of the findings recorded on q.Day (UTC, "" for
// all), oldest first. Only people may list them all; an agent sees its
// own. The log is read through the cursor in batches of at most the page's
// limit, so a page costs at most its limit in memory and findingsScan log
// entries in reading, however many findings the log holds.
func (s *Service) Findings(ctx context.Context, caller model.Identity, q FindingsQuery) (FindingsPage, error) {
	limit := q.Limit
	switch {
	case limit <= 0:
		limit = DefaultFindingsPage
	case limit > MaxFindingsPage:
		limit = MaxFindingsPage
	}
	// A day's findings are not cut short at the first finding stamped
	// after it: a finding's time is its replica's clock when it was
	// raised, and one stamped ahead (a clock stepped back since) would
	// hide every later finding of the day.
	if q.Day != "" {
		if _, err := time.Parse("2006-01-02", q.Day); err != nil {
			return FindingsPage{}, apierr.Invalid("day", "%s is not a day (YYYY-MM-DD)", apierr.Quote(q.Day))
		}
	}
	page := FindingsPage{Findings: []model.Finding{}}
	after := max(q.After, 0)
	for scanned := 0; scanned < findingsScan; {
		entries, err := s.st.LogEntries(ctx, store.LogFilter{Type: "finding", After: after, Limit: limit})
		if err != nil {
			return FindingsPage{}, err
		}
		scanned += len(entries)
		for _, e := range entries {
			var f model.Finding
			if err := unmarshalData(e.Data, &f); err != nil {
				return FindingsPage{}, fmt.Errorf("log entry %d: %w", e.Seq, err)
			}
			after = e.Seq
			if q.Day != "" && f.At.UTC().Format("2006-01-02") != q.Day {
				continue
			}
			if !canSee(caller, f.Identity) {
				continue
			}
			page.Findings = append(page.Findings, f)
			if len(page.Findings) == limit {
				page.Next = after
				return page, nil
			}
		}
		if len(entries) < limit {
			return page, nil // the end of the log
		}
	}
	page.Next = after
	return page, nil
}

// unmarshalData decodes the data of a log entry.
func unmarshalData(entry []byte, v any) error {
	var ent struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(entry, &ent); err != nil {
		return err
	}
	return json.Unmarshal(ent.Data, v)
}
