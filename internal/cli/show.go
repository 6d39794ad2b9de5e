package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/airlock-dev/airlock/internal/client"
	"github.com/airlock-dev/airlock/internal/findings"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/httpapi"
	"github.com/airlock-dev/airlock/internal/jsonlist"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/review"
)

func (a *app) grantCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "grant", Short: "Inspect one grant"}
	cmd.AddCommand(&cobra.Command{
		Use:   "show GRANT",
		Short: "The whole record of one grant: decision, approvals, sessions, history",
		Args:  plainArg("GRANT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := a.client()
			ctx := cmd.Context()
			g, err := c.Grant(ctx, args[0])
			if err != nil {
				return describe(err)
			}
			// The sessions and the history may each be hundreds of
			// thousands: each page is printed as it comes, so that the
			// CLI holds one page, not all of them. -o json prints the
			// history first, its members in key order.
			unproven := len(g.LogMismatch) > 0
			eachHistory := func(add func([]httpapi.Event) error) error {
				return c.EachHistoryPage(ctx, g.ID, 0, func(r httpapi.HistoryResponse) error {
					if len(r.LogMismatch) > 0 {
						unproven = true
						printMismatch(a.errOut, "this history", r.LogMismatch)
					}
					return add(r.Events)
				})
			}
			var page func([]model.Session) error
			var end func() error
			if a.output == "json" {
				printMismatch(a.errOut, "this record", g.LogMismatch)
				sessions, err := startGrantJSON(a.out, g, eachHistory)
				if err != nil {
					return describe(err)
				}
				page = func(ss []model.Session) error {
					for _, s := range ss {
						printMismatch(a.errOut, "session "+s.ID, s.LogMismatch)
					}
					return sessions.Add(ss)
				}
				end = func() error {
					if err := sessions.Close(); err != nil {
						return err
					}
					_, err := io.WriteString(a.out, "\n}\n")
					return err
				}
			} else {
				printGrantHead(a.out, g)
				page = func(ss []model.Session) error {
					printSessionLines(a.out, ss)
					return nil
				}
				end = func() error {
					fmt.Fprintln(a.out, historyTitle)
					if err := eachHistory(func(es []httpapi.Event) error {
						printHistoryLines(a.out, es)
						return nil
					}); err != nil {
						return describe(err)
					}
					return nil
				}
			}
			if err := c.EachSession(ctx, g.ID, func(ss []model.Session) error {
				for _, s := range ss {
					unproven = unproven || len(s.LogMismatch) > 0
				}
				return page(ss)
			}); err != nil {
				// What was printed is cut short (the JSON does not
				// parse), and the command fails.
				return describe(err)
			}
			if err := end(); err != nil {
				return err
			}
			return unprovenRecord(unproven)
		},
	})
	return cmd
}

// startGrantJSON writes the start of grant show's JSON, the object
// {"grant", "history", "sessions"} as the Encoder indents it (members in
// key order, as it writes a map's), the history's pages as eachHistory
// reads them, up to the sessions' array, and returns the writer of that
// array: Add each page of sessions, Close it, then end the object with
// "\n}\n". The output is byte for byte what encoding the whole object at
// once wrote, but for a grant without sessions, whose "sessions" is []
// where it was null.
func startGrantJSON(w io.Writer, g model.Grant, eachHistory func(add func([]httpapi.Event) error) error) (*jsonlist.Writer[model.Session], error) {
	gj, err := json.MarshalIndent(g, "  ", "  ")
	if err != nil {
		return nil, err
	}
	if _, err := io.WriteString(w, "{\n  \"grant\": "+string(gj)+",\n  \"history\": "); err != nil {
		return nil, err
	}
	history := &jsonlist.Writer[httpapi.Event]{W: w, Prefix: "  "}
	if err := eachHistory(history.Add); err != nil {
		return nil, err
	}
	if err := history.Close(); err != nil {
		return nil, err
	}
	if _, err := io.WriteString(w, ",\n  \"sessions\": "); err != nil {
		return nil, err
	}
	return &jsonlist.Writer[model.Session]{W: w, Prefix: "  "}, nil
}

// printGrant prints a grant's record, sessions and history, as grant show
// does with a page of sessions at a time.
func printGrant(w io.Writer, g model.Grant, sessions []model.Session, history []httpapi.Event) {
	printGrantHead(w, g)
	printSessionLines(w, sessions)
	printHistory(w, history)
}

// printGrantHead prints a grant's record, up to its usage.
func printGrantHead(w io.Writer, g model.Grant) {
	p := func(label, format string, args ...any) {
		linef(w, "%-17s %s", label+":", fmt.Sprintf(format, args...))
	}
	linef(w, "Grant %s  [%s]", g.ID, g.Status)
	printMismatch(w, "this record", g.LogMismatch)
	owner := ""
	if g.Owner != "" {
		owner = ", owner " + g.Owner
	}
	p("Who", "%s (%s%s)", g.Identity, g.IdentityKind, owner)
	if g.Auth != "" {
		from := ""
		if g.RequestedFrom != nil {
			from = " from " + findings.Describe(*g.RequestedFrom)
		}
		p("Authenticated", "%s%s", g.Auth, from)
	}
	for _, f := range g.Findings {
		p("Finding", "%s at %s: %s (instance %s; others %s)", f.Kind, ts(f.At), refusedNote(f), f.Instance, dash(strings.Join(f.Others, ", ")))
	}
	p("Target", "%s (%s, account %s)", g.Target, g.TargetKind, g.Account)
	p("Reason", "%s", dash(g.Reason))
	if g.Extends != "" {
		p("Extends", "%s", g.Extends)
	}
	p("Scope requested", "%s", strings.Join(g.RequestedScope.Strings(), "; "))
	p("Scope granted", "%s", dash(strings.Join(g.GrantedScope.Strings(), "; ")))
	used := dash(strings.Join(g.Usage.ScopeUsed, "; "))
	if review.UsedMayBeCapped(g.Usage.ScopeUsed) {
		used += " (" + review.UsedCapNote + ")"
	}
	p("Scope used", "%s", used)
	p("Requested", "%s for %s", ts(g.RequestedAt), g.Duration)
	d := g.Decision
	p("Policy decision", "%s by %s (set %s): %s", d.Outcome, dash(strings.Join(d.PolicyIDs, ", ")), dash(d.PolicySetHash), dash(d.Explanation))
	for _, ap := range g.Approvals {
		c := ""
		if ap.Comment != "" {
			c = fmt.Sprintf(" %q", ap.Comment)
		}
		if ap.Via != "" {
			// Where the decision was made (Slack: with the clicking user's id).
			c += " via " + ap.Via
			if ap.SlackUser != "" {
				c += " (" + ap.SlackUser + ")"
			}
		}
		if ap.Auth != nil {
			// Which credential decided: a key's id, or the SSO issuer
			// and subject of the console session.
			c += " with " + ap.Auth.String()
		}
		p("Person", "%s %s at %s%s (permitted by %s)", ap.Approver, ap.Decision, ts(ap.At), c, dash(strings.Join(ap.Policies, ", ")))
	}
	if !g.StartedAt.IsZero() {
		p("Active", "%s → %s", ts(g.StartedAt), ts(g.ExpiresAt))
	}
	if g.Status == model.Pending {
		p("Decide by", "%s", ts(g.DecideBy))
	}
	if g.Status.Final() {
		// A grant given up without a comment has no "why" beyond its
		// reason: say nothing rather than ": -", as the review table does.
		by := dash(g.EndedBy)
		if g.EndedAuth != nil {
			by += " (with " + g.EndedAuth.String() + ")"
		}
		if g.EndComment == "" {
			p("Ended", "%s at %s by %s", g.EndReason, ts(g.EndedAt), by)
		} else {
			p("Ended", "%s at %s by %s: %s", g.EndReason, ts(g.EndedAt), by, g.EndComment)
		}
	}
	if g.CredentialID != "" {
		p("Credential", "%s (%s)", g.CredentialID, g.CredentialFingerprint)
	}
	u := g.Usage
	p("Usage", "%d sessions, %d calls, %d denied, %d bytes in, %d bytes out", u.Sessions, u.Calls, u.DeniedCalls, u.BytesIn, u.BytesOut)
}

// printSessionLines prints a line for each session of a grant.
func printSessionLines(w io.Writer, sessions []model.Session) {
	for _, s := range sessions {
		linef(w, "  session %s  %s → %s  %d calls, %d denied  client %s", s.ID, ts(s.StartedAt), ts(s.EndedAt), s.Calls, s.Denied, dash(s.Client))
		printMismatch(w, "session "+s.ID, s.LogMismatch)
	}
}

// historyTitle heads a grant's log entries in grant show.
const historyTitle = "History (tamper-evident log):"

// printHistory prints a grant's log entries.
func printHistory(w io.Writer, history []httpapi.Event) {
	fmt.Fprintln(w, historyTitle)
	printHistoryLines(w, history)
}

// printHistoryLines prints a line for each of a grant's log entries.
func printHistoryLines(w io.Writer, history []httpapi.Event) {
	for _, e := range history {
		linef(w, "  #%-6d %s  %-26s %s%s", e.Seq, ts(e.Time), e.Type, voidMark(e), httpapi.EntrySummary(e.Entry))
	}
}

func (a *app) sessionCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "session", Short: "Inspect gateway sessions"}
	cmd.AddCommand(&cobra.Command{
		Use:   "show SESSION|GRANT",
		Short: "One session's recording, or every session of a grant, event by event",
		Args:  plainArg("SESSION|GRANT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := a.client()
			ids := []string{args[0]}
			if strings.HasPrefix(args[0], "g_") {
				ss, err := c.Sessions(cmd.Context(), args[0])
				if err != nil {
					return describe(err)
				}
				ids = ids[:0]
				for _, s := range ss {
					ids = append(ids, s.ID)
				}
				if len(ids) == 0 && a.output != "json" {
					linef(a.out, "grant %s has no sessions", args[0])
					return nil
				}
			}
			// Each session's recording is read a page at a time and
			// printed as it comes: a long session holds millions of
			// events, which the CLI held all at once before printing.
			ctx := cmd.Context()
			var mismatches []model.Session
			var show func(i int, id string) error
			end := func() error { return nil }
			if a.output == "json" {
				if len(ids) == 0 {
					// As the Encoder writes an empty list.
					_, err := io.WriteString(a.out, "[]\n")
					return err
				}
				show = func(i int, id string) error {
					return showSessionJSON(ctx, c, a.out, i, id, &mismatches)
				}
				end = func() error {
					_, err := io.WriteString(a.out, "\n]\n")
					return err
				}
			} else {
				show = func(_ int, id string) error {
					return showSessionText(ctx, c, a.out, id, &mismatches)
				}
			}
			for i, id := range ids {
				if err := show(i, id); err != nil {
					// What was printed is cut short (the JSON does not
					// parse), and the command fails.
					return describe(err)
				}
			}
			if err := end(); err != nil {
				return err
			}
			if a.output == "json" {
				for _, s := range mismatches {
					printMismatch(a.errOut, "session "+s.ID, s.LogMismatch)
				}
			}
			return unprovenRecord(len(mismatches) > 0)
		},
	})
	return cmd
}

// writeTranscript prints a session's events in log order, each result on
// the line after the request it answers. Results are logged in batches
// (session.results), after their requests; they are paired with them by
// the statement number (PostgreSQL) or request id (AWS), as the console
// pairs them: a result answers the request of its key logged last before
// it (no request or result of the key between them) when it is logged
// within httpapi.PairWindow of it. Any other result is printed where its
// batch was logged.
func writeTranscript(w io.Writer, events []httpapi.Event) {
	t := newTranscript(w)
	t.Add(events)
	t.Close()
}

// transcript prints a session's events as writeTranscript does, given a
// page at a time (airlock session show follows the pages of a long
// session): what pairs results with requests is carried from page to
// page. A request whose result may still come is held back, with every
// event after it, until the result comes, an event logged
// httpapi.PairWindow after it is read, or the recording ends: it holds
// the events of that many sequence numbers, and a page.
type transcript struct {
	w       io.Writer
	pairs   httpapi.ResultPairer
	answer  map[int64]*httpapi.PairedResult // a request's result, by its seq
	batches map[int64][]*httpapi.PairedResult
	held    []httpapi.Event
}

func newTranscript(w io.Writer) *transcript {
	return &transcript{w: w, answer: map[int64]*httpapi.PairedResult{}, batches: map[int64][]*httpapi.PairedResult{}}
}

// Add prints the events of the next page that need nothing still to come.
func (t *transcript) Add(events []httpapi.Event) {
	for _, e := range events {
		t.held = append(t.held, e)
		rs, ok := t.pairs.Add(e)
		if !ok {
			continue
		}
		for i := range rs {
			r := &rs[i]
			if r.Answers != 0 {
				t.answer[r.Answers] = r
			}
			t.batches[e.Seq] = append(t.batches[e.Seq], r)
		}
	}
	t.flush(false)
}

// Close prints what is held back: the recording has ended.
func (t *transcript) Close() { t.flush(true) }

func (t *transcript) flush(end bool) {
	if len(t.held) == 0 {
		return
	}
	newest := t.held[len(t.held)-1].Seq
	i := 0
	for ; i < len(t.held); i++ {
		if !end && t.pairs.Awaits(t.held[i], newest) {
			break
		}
		t.print(t.held[i])
	}
	t.held = append(t.held[:0:0], t.held[i:]...)
	t.pairs.Forget(newest)
}

func (t *transcript) print(e httpapi.Event) {
	if rs, ok := t.batches[e.Seq]; ok {
		delete(t.batches, e.Seq)
		for _, r := range rs {
			if r.Answers == 0 {
				linef(t.w, "  %-7s %s  %s", resultRef(r.Seq, r.Idx), tsMilli(e.Time), renderCall(r.Call))
			}
		}
		return
	}
	line, ok := callLine(e.Entry)
	if !ok || e.Void {
		linef(t.w, "  #%-6d %s  %-16s %s%s", e.Seq, tsMilli(e.Time), e.Type, voidMark(e), httpapi.EntrySummary(e.Entry))
		return
	}
	linef(t.w, "  #%-6d %s  %s", e.Seq, tsMilli(e.Time), line)
	if r := t.answer[e.Seq]; r != nil {
		delete(t.answer, e.Seq)
		linef(t.w, "  %-7s %s  %s", resultRef(r.Seq, r.Idx), strings.Repeat(" ", len(tsMilli(e.Time))), renderCall(r.Call))
	}
}

// voidMark marks an entry a log.refused entry names: its caller was told
// it failed (the batch's commit outcome was unknown), so it is not a call
// made, and no record counts it. Its data is still shown, as logged.
func voidMark(e httpapi.Event) string {
	if !e.Void {
		return ""
	}
	return "⊘ REFUSED (void: named by a log.refused entry, not counted)  "
}

// resultRef names a result by the log entry that holds it and its place in
// that entry's batch (#13.2: the second result in entry 13), so that results
// logged together do not all show the same bare entry number.
func resultRef(seq int64, idx int) string {
	return fmt.Sprintf("#%d.%d", seq, idx)
}

// callLine renders a session.call entry as one transcript line: what the
// client asked and whether it was allowed, or what came back. Statements
// (PostgreSQL) read as SQL; AWS calls as action and resource.
func callLine(raw json.RawMessage) (string, bool) {
	c, ok := httpapi.EntryCall(raw)
	if !ok {
		return "", false
	}
	return renderCall(c), true
}

// renderCall renders one request or result, on one line: a statement's
// line breaks are shown as ↵.
func renderCall(c gateway.Call) string {
	if c.Kind == "result" {
		return "   → " + httpapi.ResultText(c)
	}
	var b strings.Builder
	if c.Allowed {
		b.WriteString("✓ ")
	} else {
		b.WriteString("✗ DENIED ")
	}
	text, sql, details := httpapi.RequestText(c)
	if sql {
		b.WriteString("SQL> " + strings.NewReplacer("\r\n", " ↵ ", "\n", " ↵ ").Replace(text))
	} else {
		b.WriteString(text)
	}
	if details != "" {
		b.WriteString("  " + details)
	}
	return b.String()
}

// tsMilli formats an event time for transcripts: UTC, to the millisecond.
func tsMilli(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05.000Z")
}

// sessionEventsPage is the events session show asks for in a page (the
// server's most); tests make it small, to page a short session.
var sessionEventsPage = grants.MaxEventsPage

// showSessionText prints one session's record and its transcript, a page
// of its recording at a time; a session whose record the log does not
// prove is added to mismatches.
func showSessionText(ctx context.Context, c *client.Client, w io.Writer, id string, mismatches *[]model.Session) error {
	t := newTranscript(w)
	first := true
	err := c.EachSessionPage(ctx, id, sessionEventsPage, func(v httpapi.SessionResponse) error {
		if first {
			first = false
			s := v.Session
			if len(s.LogMismatch) > 0 {
				*mismatches = append(*mismatches, s)
			}
			linef(w, "Session %s  grant %s  %s on %s  from %s", s.ID, s.GrantID, s.Identity, s.Target, dash(s.Client))
			// The line above and the next are the session's stored
			// summary: say so where the log does not prove it.
			printMismatch(w, "session "+s.ID, s.LogMismatch)
			linef(w, "  %s → %s  %d calls, %d denied, %d bytes in, %d bytes out", ts(s.StartedAt), ts(s.EndedAt), s.Calls, s.Denied, s.BytesIn, s.BytesOut)
		}
		t.Add(v.Events)
		return nil
	})
	if err != nil {
		return err
	}
	t.Close()
	return nil
}

// showSessionJSON writes the i-th element of session show's JSON array,
// {"session", "events"} as the Encoder indents it, a page of events at a
// time: the output is byte for byte what encoding every session's whole
// recording at once wrote. The array's end ("\n]\n") is the caller's.
func showSessionJSON(ctx context.Context, c *client.Client, w io.Writer, i int, id string, mismatches *[]model.Session) error {
	var list *jsonlist.Writer[httpapi.Event]
	err := c.EachSessionPage(ctx, id, sessionEventsPage, func(v httpapi.SessionResponse) error {
		if list == nil {
			if len(v.Session.LogMismatch) > 0 {
				*mismatches = append(*mismatches, v.Session)
			}
			sj, err := json.MarshalIndent(v.Session, "    ", "  ")
			if err != nil {
				return err
			}
			sep := ",\n"
			if i == 0 {
				sep = "[\n"
			}
			if _, err := io.WriteString(w, sep+"  {\n    \"session\": "+string(sj)+",\n    \"events\": "); err != nil {
				return err
			}
			list = &jsonlist.Writer[httpapi.Event]{W: w, Prefix: "    "}
		}
		return list.Add(v.Events)
	})
	if err != nil {
		return err
	}
	if err := list.Close(); err != nil {
		return err
	}
	_, err = io.WriteString(w, "\n  }")
	return err
}

// unprovenRecord fails a show command, in every output format, when a
// record it showed (a grant's, or a session's stored summary) differs
// from what the audit log implies, as airlock grants does for its rows:
// the output holds the database's answers, and a script taking exit 0 as
// "this is the record" would take them for the log's.
func unprovenRecord(unproven bool) error {
	if !unproven {
		return nil
	}
	return exitf(1, "the record shown differs from the audit log: the database was changed outside Airlock (run airlock audit verify)")
}

func refusedNote(f model.Finding) string {
	if f.Refused {
		return f.Detail + "; refused"
	}
	return f.Detail
}
