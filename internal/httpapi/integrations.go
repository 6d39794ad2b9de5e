package httpapi

import (
	"net/http"

	"github.com/airlock-dev/airlock/internal/apierr"
)

// SetSlackActions serves Slack's interactivity callback (POST
// /v1/integrations/slack/actions) with hd, which authenticates requests by
// Slack's signature rather than a bearer key (see package notify). Call it
// before serving. Without it no request can be authenticated there, and
// every one is answered 401.
func (h *Handler) SetSlackActions(hd http.Handler) { h.slack = hd }

func (h *Handler) slackActions(w http.ResponseWriter, r *http.Request) {
	if h.slack == nil {
		writeError(w, &apierr.Error{Status: http.StatusUnauthorized, Code: apierr.CodeUnauthorized, Message: "only requests signed by Slack are accepted here, and Slack approvals are not configured (notify.slack)"})
		return
	}
	h.slack.ServeHTTP(w, r)
}

// SetWebhookActions serves decisions sent back by webhooks' receivers (POST
// /v1/integrations/webhook/actions) with hd, which authenticates requests
// by the webhook's signature rather than a bearer key (see package
// notify). Without it every request there is answered 401.
func (h *Handler) SetWebhookActions(hd http.Handler) { h.webhook = hd }

func (h *Handler) webhookActions(w http.ResponseWriter, r *http.Request) {
	if h.webhook == nil {
		writeError(w, &apierr.Error{Status: http.StatusUnauthorized, Code: apierr.CodeUnauthorized, Message: "only decisions signed by a webhook that may decide are accepted here, and none is configured (notify.webhooks[].decisions)"})
		return
	}
	h.webhook.ServeHTTP(w, r)
}
