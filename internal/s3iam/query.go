package s3iam

import (
	"strings"

	"github.com/airlock-dev/airlock/internal/s3err"
)

// maxQueryParams bounds the work spent on one query string; no S3
// operation uses more than a dozen parameters, presigning included.
const maxQueryParams = 48

// qparam is one decoded query parameter. hasValue tells "?acl" from "?acl=".
type qparam struct {
	name, value string
	hasValue    bool
}

// query is a parsed query string: few parameters, so a slice searched
// linearly beats a map and allocates once.
type query []qparam

func (q query) get(name string) (qparam, bool) {
	for _, p := range q {
		if p.name == name {
			return p, true
		}
	}
	return qparam{}, false
}

// parseQuery decodes raw (r.URL.RawQuery) strictly. S3 servers and
// Airlock must agree on every parameter, so anything two servers might
// read differently is refused rather than guessed at:
//   - a literal '+' (see errPlus) and malformed escapes;
//   - ';', which some servers treat as a separator and others do not;
//   - a parameter given twice (which one would the upstream use?).
//
// Names are decoded too, as S3 does, so "%70refix" is "prefix".
func parseQuery(raw string) (query, error) {
	if raw == "" {
		return nil, nil
	}
	if strings.IndexByte(raw, ';') >= 0 {
		return nil, s3err.New(s3err.InvalidArgument, "the query string contains ';', which S3 servers do not agree on; encode it as %%3B")
	}
	n := strings.Count(raw, "&") + 1
	if n > maxQueryParams {
		return nil, s3err.New(s3err.InvalidArgument, "the query string has more than %d parameters", maxQueryParams)
	}
	q := make(query, 0, n)
	for raw != "" {
		var part string
		part, raw, _ = strings.Cut(raw, "&")
		if part == "" {
			continue
		}
		rn, rv, eq := strings.Cut(part, "=")
		name, err := unescape(rn, "query parameter name")
		if err != nil {
			return nil, err
		}
		value, err := unescapeOf(rv, "query parameter ", name)
		if err != nil {
			return nil, err
		}
		if name == "" {
			return nil, s3err.New(s3err.InvalidArgument, "the query string has a parameter without a name")
		}
		if _, dup := q.get(name); dup {
			return nil, s3err.New(s3err.InvalidArgument, "query parameter %q is given more than once", name)
		}
		q = append(q, qparam{name: name, value: value, hasValue: eq})
	}
	return q, nil
}

// authParams are the SigV4 presigning parameters and the SDK's x-id
// hint: they authenticate or label a request without changing what it does.
// Their values are never copied into Params (the security token is a
// secret).
var authParams = []string{
	"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
	"X-Amz-SignedHeaders", "X-Amz-Signature", "X-Amz-Security-Token", "x-id",
}

// subresources are the query parameters that select an operation rather
// than parameterise one. A request with two of them is refused.
var subresources = map[string]bool{
	"accelerate": true, "acl": true, "analytics": true, "attributes": true,
	"cors": true, "delete": true, "encryption": true, "intelligent-tiering": true,
	"inventory": true, "legal-hold": true, "lifecycle": true, "location": true,
	"logging": true, "metadataConfiguration": true, "metadataTable": true,
	"metadataInventoryTable": true, "metadataJournalTable": true,
	"metrics": true, "notification": true, "object-lock": true,
	"ownershipControls": true, "policy": true, "policyStatus": true,
	"publicAccessBlock": true, "replication": true, "requestPayment": true,
	"restore": true, "retention": true, "select": true, "session": true,
	"tagging": true, "torrent": true, "uploadId": true, "uploads": true,
	"versioning": true, "versions": true, "website": true, "renameObject": true,
	"abac": true,
}

// paramKeys names, for Op.Params, each query parameter a reviewer should
// see. Parameters not listed here are allowed where an operation takes
// them but not recorded.
var paramKeys = map[string]string{
	"versionId":          "version_id",
	"uploadId":           "upload_id",
	"partNumber":         "part_number",
	"prefix":             "prefix",
	"delimiter":          "delimiter",
	"marker":             "marker",
	"max-keys":           "max_keys",
	"start-after":        "start_after",
	"continuation-token": "continuation_token",
	"key-marker":         "key_marker",
	"version-id-marker":  "version_id_marker",
	"upload-id-marker":   "upload_id_marker",
	"max-uploads":        "max_uploads",
	"max-parts":          "max_parts",
	"part-number-marker": "part_number_marker",
	"max-buckets":        "max_buckets",
	"bucket-region":      "bucket_region",
	"fetch-owner":        "fetch_owner",
	"encoding-type":      "encoding_type",
}
