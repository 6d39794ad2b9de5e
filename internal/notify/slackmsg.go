package notify

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
)

// Action ids of the buttons: the prefix, then the grant id.
const (
	approvePrefix = "airlock_approve:"
	denyPrefix    = "airlock_deny:"
)

// maxField bounds one piece of user text in a message; Slack caps a
// section's text at maxSection characters.
const maxField = 500

// maxSection is the most characters Slack takes in a section's text; it
// refuses a longer message (invalid_blocks), which then never shows.
const maxSection = 3000

// esc makes text from users and agents safe in Slack mrkdwn: &, < and > are
// entity-escaped (so no <!channel>, <@U…> or <url|label> can be smuggled
// in), control characters are shown as \uXXXX, and the length is bounded.
func esc(s string) string { return escN(s, maxField) }

// escN is esc bounded to max characters of s, or not at all if max is 0.
func escN(s string, max int) string {
	var b strings.Builder
	n := 0
	for _, r := range s {
		if max > 0 && n >= max {
			b.WriteString("…")
			break
		}
		n++
		switch {
		case r == '&':
			b.WriteString("&amp;")
		case r == '<':
			b.WriteString("&lt;")
		case r == '>':
			b.WriteString("&gt;")
		case r == utf8.RuneError:
			b.WriteString(`\ufffd`)
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0x2028 || r == 0x2029 || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069):
			// C0/C1 controls, line separators and bidi overrides: visible, not obeyed.
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// codeSpan shows a scope statement as inline code: mrkdwn formats text
// between asterisks, underscores and tildes even in a verbatim text
// object, and a statement's wildcards would pair up
// ("arn:aws:s3:::*secret*" showed as a bold "arn:aws:s3:::secret", hiding
// the wildcards from the person approving it). Inside a code span nothing
// is formatted; a backtick, which would end the span, is shown as \u0060.
func codeSpan(s string) string {
	return "`" + strings.ReplaceAll(escN(s, 0), "`", `\u0060`) + "`"
}

// text is a Block Kit text object.
type text struct {
	Type string `json:"type"`
	Text string `json:"text"`
	// Verbatim (mrkdwn only) stops Slack from turning bare URLs and
	// channel names in the text into links and parsing mentions: what an
	// agent wrote in its reason shows as it wrote it, never as a link the
	// approver might follow from the request.
	Verbatim bool `json:"verbatim,omitempty"`
}

// mrkdwn is a verbatim mrkdwn text object: Airlock's own formatting
// (bold labels) applies, nothing else is interpreted.
func mrkdwn(s string) text { return text{Type: "mrkdwn", Text: s, Verbatim: true} }

type block map[string]any

// message is what is posted to the incoming webhook or a response_url.
type message struct {
	Channel         string  `json:"channel,omitempty"`
	Text            string  `json:"text"`
	Blocks          []block `json:"blocks,omitempty"`
	ResponseType    string  `json:"response_type,omitempty"`
	ReplaceOriginal bool    `json:"replace_original,omitempty"`
}

// requestSummary is the request in mrkdwn: who, target, scope, duration,
// reason, policy explanation. Every value from a user or agent is escaped.
// Every scope statement is shown whole, or not at all: whole reports
// whether all of them are there. When they do not all fit in a section,
// those that do are followed by a line saying where to see the rest.
func requestSummary(g model.Grant) (summary string, whole bool) {
	head := fmt.Sprintf("*%s* (%s) requests access to *%s* (account %s)\n*Scope:*\n",
		esc(g.Identity), esc(string(g.IdentityKind)), esc(g.Target), esc(g.Account))
	tail := fmt.Sprintf("\n*Duration:* %s\n*Reason:* %s\n*Policy:* %s\n*Grant:* %s",
		esc(g.Duration.String()), esc(g.Reason), esc(g.Decision.Explanation), esc(g.ID))
	var scope []string
	for _, s := range g.RequestedScope.Strings() {
		scope = append(scope, "• "+codeSpan(s))
	}
	if t := head + strings.Join(scope, "\n") + tail; utf8.RuneCountInString(t) <= maxSection {
		return t, true
	}
	rest := fmt.Sprintf("• … more than Slack can show: see the whole request with airlock grant show %s, and approve it there", esc(g.ID))
	room := maxSection - utf8.RuneCountInString(head+tail+rest)
	var kept []string
	for _, l := range scope {
		n := utf8.RuneCountInString(l) + 1
		if n > room {
			break
		}
		kept, room = append(kept, l), room-n
	}
	return head + strings.Join(append(kept, rest), "\n") + tail, false
}

// pendingMessage is the request with Approve and Deny buttons whose action
// ids carry the grant id and whose values are signed with key (buttonValue:
// a click counts only on a button Airlock posted). A request whose scope
// the message cannot show whole gets no Approve button: nobody approves
// from Slack what Slack did not show them.
func pendingMessage(g model.Grant, channel string, key []byte) message {
	summary, whole := requestSummary(g)
	var buttons []block
	if whole {
		buttons = append(buttons, block{"type": "button", "action_id": approvePrefix + g.ID, "value": buttonValue(key, "approve", g), "style": "primary", "text": text{Type: "plain_text", Text: "Approve"}})
	}
	buttons = append(buttons, block{"type": "button", "action_id": denyPrefix + g.ID, "value": buttonValue(key, "deny", g), "style": "danger", "text": text{Type: "plain_text", Text: "Deny"},
		"confirm": block{"title": text{Type: "plain_text", Text: "Deny this request?"}, "text": text{Type: "plain_text", Text: "It is recorded as denied from Slack by you."},
			"confirm": text{Type: "plain_text", Text: "Deny"}, "deny": text{Type: "plain_text", Text: "Cancel"}}})
	return message{
		Channel: channel,
		Text:    fmt.Sprintf("Access request %s from %s for %s", esc(g.ID), esc(g.Identity), esc(g.Target)),
		Blocks: []block{
			{"type": "section", "text": mrkdwn(summary)},
			{"type": "actions", "block_id": "airlock_decision", "elements": buttons},
		},
	}
}

// outcome describes what became of a request, for follow-ups.
func outcome(g model.Grant) string {
	by := g.EndedBy
	var via string
	if n := len(g.Approvals); n > 0 {
		a := g.Approvals[n-1]
		by = a.Approver
		if a.Via != "" {
			via = " via " + esc(a.Via)
		}
	}
	switch g.Status {
	case model.Active:
		return fmt.Sprintf("Approved by *%s*%s; active until %s.", esc(by), via, g.ExpiresAt.UTC().Format("2006-01-02 15:04:05Z"))
	case model.Denied:
		return fmt.Sprintf("Denied by *%s*%s: %s", esc(by), via, esc(g.EndComment))
	case model.Cancelled:
		return fmt.Sprintf("Cancelled (%s): %s", esc(by), esc(g.EndComment))
	default:
		return fmt.Sprintf("Now %s.", esc(string(g.Status)))
	}
}

// decidedMessage replaces the original message (through response_url) once
// decided: the request without buttons, and the outcome.
func decidedMessage(g model.Grant) message {
	summary, _ := requestSummary(g)
	return message{
		ReplaceOriginal: true,
		Text:            fmt.Sprintf("Access request %s: %s", esc(g.ID), outcome(g)),
		Blocks: []block{
			{"type": "section", "text": mrkdwn(summary)},
			{"type": "context", "elements": []text{mrkdwn(outcome(g))}},
		},
	}
}

// ephemeral is a reply only the clicking user sees.
func ephemeral(msg string) message {
	return message{ResponseType: "ephemeral", Text: esc(msg)}
}

// slackMessageFor returns the incoming-webhook post for change c, or nil:
// a request that waits for a person is posted with buttons; a decision on
// one, unless made from Slack (whose message is replaced in place), is
// followed up, since an incoming webhook cannot edit what it posted. A
// denial by the policy set at a load (c.Trigger: a forbid added, or the
// permit withdrawn, since the request) is such a decision: its request was posted, and without the
// follow-up its buttons still looked approvable. key signs the buttons'
// values.
func slackMessageFor(c grants.Change, channel string, key []byte) []byte {
	g := c.Grant
	var m message
	switch {
	case c.Type == "grant.requested" && g.Status == model.Pending:
		m = pendingMessage(g, channel, key)
	case c.Type == "grant.approved" || (c.Type == "grant.denied" && (len(g.Approvals) > 0 || c.Trigger != "")) ||
		(c.Type == "grant.cancelled" && g.Decision.Outcome == "human" && g.StartedAt.IsZero()):
		if n := len(g.Approvals); n > 0 && g.Approvals[n-1].Via == "slack" {
			return nil
		}
		m = message{Channel: channel, Text: fmt.Sprintf("Access request %s (%s for %s): %s", esc(g.ID), esc(g.Identity), esc(g.Target), outcome(g))}
	default:
		return nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil
	}
	return b
}
