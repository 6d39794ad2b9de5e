package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/internal/apierr"
	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
)

// Decisions from a generic webhook's receiver.
//
// A chat tool other than Slack (or any approval front end) receives the
// lifecycle events of a webhook and shows a pending request with its own
// Approve and Deny buttons; a click comes back to WebhookActions (POST
// /v1/integrations/webhook/actions) as a JSON decision naming the person
// who clicked, signed as Airlock signs its events (Sign) with that
// webhook's secret. Only webhooks configured with decisions: true may send
// them: the secret of one that only receives events authorises nothing.
// The person is an Airlock human identity, decided for under the same
// approve policies as the CLI; the approval records the channel
// ("webhook"). Refusals are recorded in the log (integration.refused),
// those before the signature is verified rate-limited, as for Slack.

// maxDecisionBody bounds a decision's body; a real one is a few hundred
// bytes.
const maxDecisionBody = 16 << 10

// Decision is the body of a webhook decision.
type Decision struct {
	GrantID string `json:"grant_id"`
	// Decision is "approve" or "deny".
	Decision string `json:"decision"`
	// Approver is the name of the human identity who decided.
	Approver string `json:"approver"`
	// Comment goes with an approval, Reason with a denial (a default
	// naming the channel and the person when empty).
	Comment string `json:"comment,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

// parseDecision reads a decision strictly: JSON with no unknown fields and
// nothing after it, a grant id as grants issues them, a known verb and an
// approver. It is the parser facing the network (FuzzParseDecision).
func parseDecision(body []byte) (Decision, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var d Decision
	if err := dec.Decode(&d); err != nil {
		return Decision{}, errors.New("the body is not a decision (JSON with grant_id, decision, approver, and comment or reason)")
	}
	if dec.More() {
		return Decision{}, errors.New("the body holds more than one JSON value")
	}
	if !validID(d.GrantID, "g_") {
		return Decision{}, errors.New("grant_id does not name a grant")
	}
	if d.Decision != "approve" && d.Decision != "deny" {
		return Decision{}, fmt.Errorf("decision %q: want approve or deny", trunc(d.Decision))
	}
	if d.Approver == "" || len(d.Approver) > 128 {
		return Decision{}, errors.New("approver must name the person who decided")
	}
	return d, nil
}

// verifyDecision checks SignatureHeader ("t=<unix seconds>,v1=<hex>") over
// body against the secret of every webhook that may decide, and the
// timestamp's freshness; it returns the refusal reason or "".
func (n *Notifier) verifyDecision(h http.Header, body []byte) string {
	ts, sig, ok := parseSignature(h.Get(SignatureHeader))
	if !ok {
		return RefusedBadSignature
	}
	if d := n.clk.Now().Unix() - ts; d > int64(window/time.Second) || d < -int64(window/time.Second) {
		return RefusedStale
	}
	prefix := strconv.FormatInt(ts, 10) + "."
	match := false
	for _, w := range n.o.Webhooks {
		if !w.Decisions {
			continue
		}
		m := hmac.New(sha256.New, w.Secret)
		m.Write([]byte(prefix))
		m.Write(body)
		// Every secret is tried, so the time taken does not say which
		// one matched.
		if hmac.Equal(sig, m.Sum(nil)) {
			match = true
		}
	}
	if !match {
		return RefusedBadSignature
	}
	return ""
}

// parseSignature splits "t=<unix seconds>,v1=<64 hex digits>".
func parseSignature(v string) (ts int64, sig []byte, ok bool) {
	t, rest, ok := strings.Cut(v, ",")
	if !ok {
		return 0, nil, false
	}
	tRaw, ok1 := strings.CutPrefix(t, "t=")
	hexSig, ok2 := strings.CutPrefix(rest, "v1=")
	if !ok1 || !ok2 || len(tRaw) == 0 || len(tRaw) > 12 || len(hexSig) != 2*sha256.Size {
		return 0, nil, false
	}
	ts, err := strconv.ParseInt(tRaw, 10, 64)
	if err != nil {
		return 0, nil, false
	}
	sig, err = hex.DecodeString(hexSig)
	return ts, sig, err == nil
}

// WebhookActions is the handler for decisions sent back by webhooks'
// receivers (POST /v1/integrations/webhook/actions). It needs no bearer
// key: the webhook's signature is the authentication.
func (n *Notifier) WebhookActions() http.Handler { return http.HandlerFunc(n.webhookActions) }

// DecidesByWebhook reports whether some webhook may send decisions.
func (n *Notifier) DecidesByWebhook() bool {
	for _, w := range n.o.Webhooks {
		if w.Decisions {
			return true
		}
	}
	return false
}

func (n *Notifier) webhookActions(w http.ResponseWriter, r *http.Request) {
	if !n.DecidesByWebhook() || n.o.Log == nil || n.o.Lookup == nil {
		writeAPIError(w, &apierr.Error{Status: http.StatusUnauthorized, Code: apierr.CodeUnauthorized,
			Message: "no webhook may send decisions here (notify.webhooks[].decisions)"})
		return
	}
	ctx := r.Context()
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxDecisionBody))
	if err != nil && !tooLarge(err) {
		writeAPIError(w, &apierr.Error{Status: http.StatusBadRequest, Code: apierr.CodeInvalid, Message: "the request body could not be read"})
		return
	}
	if err != nil {
		n.refuseDecisionCall(ctx, w, http.StatusRequestEntityTooLarge, RefusedTooLarge, Decision{}, r.RemoteAddr, false, "the request is too large")
		return
	}
	if why := n.verifyDecision(r.Header, body); why != "" {
		n.refuseDecisionCall(ctx, w, http.StatusUnauthorized, why, Decision{}, r.RemoteAddr, false,
			"the request is not signed by a webhook that may decide, or its timestamp is more than five minutes away")
		return
	}
	// Remembered by what was verified (the signature's bytes), not the
	// header's text: "t=+1700000000", "t=01700000000" and upper-case hex
	// verify as the canonical header does and must not count as new.
	ts, sig, _ := parseSignature(r.Header.Get(SignatureHeader))
	if !n.seen.add("hook:"+hex.EncodeToString(sig), n.clk.Now()) {
		n.refuseDecisionCall(ctx, w, http.StatusUnauthorized, RefusedReplay, Decision{}, r.RemoteAddr, false, "this request was already handled")
		return
	}
	d, err := parseDecision(body)
	if err != nil {
		n.refuseDecisionCall(ctx, w, http.StatusBadRequest, RefusedMalformed, Decision{}, r.RemoteAddr, true, err.Error())
		return
	}
	// Across replicas and restarts (see claim).
	if fresh, err := n.claim(ctx, time.Unix(ts, 0), "hook-sig:"+hex.EncodeToString(sig)); err != nil {
		n.logger.Error("recording a webhook decision as handled", "err", err)
		writeAPIError(w, &apierr.Error{Status: http.StatusServiceUnavailable, Code: apierr.CodeUnavailable, Message: "Airlock could not record the decision; nothing was changed"})
		return
	} else if !fresh {
		n.refuseDecisionCall(ctx, w, http.StatusUnauthorized, RefusedReplay, d, r.RemoteAddr, true, "this request was already handled")
		return
	}
	who, ok := n.o.Lookup(d.Approver)
	if !ok || who.Kind != model.Human || who.Disabled {
		n.refuseDecisionCall(ctx, w, http.StatusForbidden, RefusedUnknownUser, d, r.RemoteAddr, true,
			fmt.Sprintf("approver %q is not an enabled human identity in Airlock", trunc(d.Approver)))
		return
	}
	dctx := grants.WithChannel(ctx, "webhook", "")
	var g model.Grant
	if d.Decision == "approve" {
		g, err = n.o.Service.Approve(dctx, who, d.GrantID, d.Comment)
	} else {
		reason := d.Reason
		if reason == "" {
			reason = "denied through a webhook by " + who.Name
		}
		g, err = n.o.Service.Deny(dctx, who, d.GrantID, reason)
	}
	if err != nil {
		ae := apierr.From(err)
		n.recordRefusal(ctx, "webhook", RefusedDecision, d.GrantID, r.RemoteAddr, true, map[string]any{"approver": who.Name, "action": d.Decision}, ae.Message)
		writeAPIError(w, ae)
		return
	}
	n.logger.Info("decision through a webhook", "grant", g.ID, "by", who.Name, "decision", d.Decision)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"grant_id": g.ID, "status": string(g.Status)})
}

// refuseDecisionCall records the refusal and answers with an error
// envelope. Before the signature is verified nothing in the body is
// trusted or recorded.
func (n *Notifier) refuseDecisionCall(ctx context.Context, w http.ResponseWriter, status int, why string, d Decision, remote string, verified bool, msg string) {
	var extra map[string]any
	if verified && d.Approver != "" {
		extra = map[string]any{"approver": trunc(d.Approver), "action": d.Decision}
	}
	n.recordRefusal(ctx, "webhook", why, d.GrantID, remote, verified, extra, "")
	code := apierr.CodeInvalid
	switch status {
	case http.StatusUnauthorized:
		code = apierr.CodeUnauthorized
	case http.StatusForbidden:
		code = apierr.CodeForbidden
	}
	writeAPIError(w, &apierr.Error{Status: status, Code: code, Message: msg})
}

// recordRefusal writes an integration.refused entry for channel: the
// reason, the caller's address and, once verified, what was asked; never
// a signature or a secret. Unverified refusals are rate-limited.
func (n *Notifier) recordRefusal(ctx context.Context, channel, why, grant, remote string, verified bool, extra map[string]any, detail string) {
	n.logger.Warn("integration action refused", "channel", channel, "reason", why, "grant", grant, "remote", remote)
	if !verified && !n.refusal.allow(n.clk.Now()) {
		return
	}
	data := map[string]any{"channel": channel, "reason": why, "remote": remote, "verified": verified}
	for k, v := range extra {
		data[k] = v
	}
	if detail != "" {
		data["detail"] = detail
	}
	ev := auditlog.Event{Type: "integration.refused", Actor: channel, Data: data}
	if verified {
		ev.GrantID = grant
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := n.o.Log.Append(rctx, ev); err != nil {
		n.logger.Error("recording a refused integration action", "err", err)
	}
}

// writeAPIError answers with the API's error envelope.
func writeAPIError(w http.ResponseWriter, e *apierr.Error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": e})
}
