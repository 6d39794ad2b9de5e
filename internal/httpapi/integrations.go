package httpapi

import (
	"net/http"

	"github.com/airlock-dev/airlock/internal/apierr"
)

// SetSlackActions serves Slack's interactivity callback (POST
// /v1/integrations/slack/actions) with hd, which authenticates requests by
// Slack's signature rather than a bearer key (see package notify). Call it
// before serving; without it the route answers 404.
func (h *Handler) SetSlackActions(hd http.Handler) { h.slack = hd }

func (h *Handler) slackActions(w http.ResponseWriter, r *http.Request) {
	if h.slack == nil {
		writeError(w, &apierr.Error{Status: http.StatusNotFound, Code: apierr.CodeNotFound, Message: "Slack approvals are not configured (notify.slack)"})
		return
	}
	h.slack.ServeHTTP(w, r)
}
