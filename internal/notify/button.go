package notify

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"

	"github.com/airlock-dev/airlock/internal/model"
)

// Slack's signature on a click proves that Slack sent it, not which message
// the button was on: whoever can post to the workspace through the app's
// incoming webhook can post Airlock's action ids (and any grant id) under a
// text of their own, and an approver's click on that came back as a click
// on Airlock's message. So each button Airlock posts carries, as its value,
// a MAC under a key only Airlock's replicas hold (Slack.ButtonKey) over the
// grant id, the action and a digest of the request as the message showed it
// (requestSummary); a click is taken only with a value that verifies, and
// only while the request still reads as the message showed it.

// buttonVersion starts every value; a value without it is an older
// Airlock's (the bare grant id) or not Airlock's at all.
const buttonVersion = "v1."

// maxButtonValue is the longest value Slack lets a button carry.
const maxButtonValue = 2000

// buttonValue is the value of g's Approve or Deny (verb) button:
// "v1.<digest>.<mac>", both unpadded base64url.
func buttonValue(key []byte, verb string, g model.Grant) string {
	d := shownDigest(g)
	enc := base64.RawURLEncoding
	return buttonVersion + enc.EncodeToString(d) + "." + enc.EncodeToString(buttonMAC(key, verb, g.ID, d))
}

// shownDigest is the SHA-256 of the request's text in the message: who,
// target, account, scope, duration, reason, policy explanation, grant id.
func shownDigest(g model.Grant) []byte {
	s, _ := requestSummary(g)
	sum := sha256.Sum256([]byte(s))
	return sum[:]
}

// buttonMAC binds verb, grant and digest under key. Verb and grant ids hold
// no newline (parsePayload), and the digest has a fixed length, so no two
// inputs write the same bytes.
func buttonMAC(key []byte, verb, grant string, digest []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("airlock slack button v1\n" + verb + "\n" + grant + "\n"))
	m.Write(digest)
	return m.Sum(nil)
}

// buttonCheck is what checkButton found.
type buttonCheck int

const (
	buttonOK buttonCheck = iota
	// buttonLegacy: the value is the bare grant id, as an Airlock before
	// signed values posted it (or as anyone can write it).
	buttonLegacy
	// buttonForged: no value, or one whose MAC does not verify for this
	// grant and action.
	buttonForged
	// buttonChanged: the MAC verifies, but g no longer reads as the
	// message showed it.
	buttonChanged
)

// checkButton checks a click's button value against g, the grant it names
// as it stands now.
func checkButton(key []byte, a action, g model.Grant) buttonCheck {
	if a.value == a.grant {
		return buttonLegacy
	}
	rest, ok := strings.CutPrefix(a.value, buttonVersion)
	d64, m64, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 {
		return buttonForged
	}
	enc := base64.RawURLEncoding.Strict()
	d, err := enc.DecodeString(d64)
	mac, err2 := enc.DecodeString(m64)
	if err != nil || err2 != nil || len(d) != sha256.Size || len(mac) != sha256.Size {
		return buttonForged
	}
	if !hmac.Equal(mac, buttonMAC(key, a.verb, a.grant, d)) {
		return buttonForged
	}
	if g.ID != a.grant || !bytes.Equal(d, shownDigest(g)) {
		return buttonChanged
	}
	return buttonOK
}
