package httpapi_test

import (
	"fmt"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/airlock-dev/airlock/internal/apierr"
	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/httpapi"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/policy"
	"github.com/airlock-dev/airlock/internal/scope"
)

const openAPIPath = "../../api/openapi.yaml"

// openAPIDoc is the part of the document the tests look at.
type openAPIDoc struct {
	OpenAPI  string                          `yaml:"openapi"`
	Security []map[string][]string           `yaml:"security"`
	Paths    map[string]map[string]yaml.Node `yaml:"paths"`
	Comps    struct {
		Schemas         map[string]openAPISchema `yaml:"schemas"`
		SecuritySchemes map[string]struct {
			Type   string `yaml:"type"`
			Scheme string `yaml:"scheme"`
		} `yaml:"securitySchemes"`
	} `yaml:"components"`
}

type openAPIOperation struct {
	Security  *[]map[string][]string `yaml:"security"`
	Responses map[string]any         `yaml:"responses"`
}

type openAPISchema struct {
	Required   []string                 `yaml:"required"`
	Properties map[string]openAPISchema `yaml:"properties"`
	Enum       []string                 `yaml:"enum"`
}

var httpMethods = map[string]bool{"get": true, "put": true, "post": true, "delete": true, "options": true, "head": true, "patch": true, "trace": true}

func loadOpenAPI(t *testing.T) openAPIDoc {
	t.Helper()
	data, err := os.ReadFile(openAPIPath)
	if err != nil {
		t.Fatal(err)
	}
	var doc openAPIDoc
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s: %v", openAPIPath, err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1") {
		t.Fatalf("openapi: %q, want 3.1.x", doc.OpenAPI)
	}
	return doc
}

// TestOpenAPIRoutes checks that the document describes exactly the routes
// the handler serves, no more and no fewer, with the status codes and
// authentication the handler gives them.
func TestOpenAPIRoutes(t *testing.T) {
	doc := loadOpenAPI(t)
	inDoc := map[string]openAPIOperation{}
	for path, item := range doc.Paths {
		for key, node := range item {
			if !httpMethods[key] {
				continue // parameters, summary, …
			}
			var op openAPIOperation
			if err := node.Decode(&op); err != nil {
				t.Fatalf("paths.%s.%s: %v", path, key, err)
			}
			inDoc[strings.ToUpper(key)+" "+path] = op
		}
	}
	served := map[string]bool{}
	for _, r := range httpapi.Routes {
		if served[r] {
			t.Errorf("httpapi.Routes lists %q twice", r)
		}
		served[r] = true
		if _, ok := inDoc[r]; !ok {
			t.Errorf("route %q is served but missing from %s", r, openAPIPath)
		}
	}
	for r := range inDoc {
		if !served[r] {
			t.Errorf("%s describes %q, which httpapi.Routes does not serve", openAPIPath, r)
		}
	}

	// Authentication: bearer everywhere but the health checks and the
	// integrations' callbacks, which their senders' signatures authenticate.
	if s := doc.Comps.SecuritySchemes["bearerAuth"]; s.Type != "http" || s.Scheme != "bearer" {
		t.Errorf("securitySchemes.bearerAuth = %+v, want type http, scheme bearer", s)
	}
	if len(doc.Security) != 1 || doc.Security[0]["bearerAuth"] == nil {
		t.Errorf("top-level security = %v, want [bearerAuth]", doc.Security)
	}
	for r, op := range inDoc {
		open := op.Security != nil && len(*op.Security) == 0
		if want := r == "GET /healthz" || r == "GET /readyz" || r == "POST /v1/integrations/slack/actions" || r == "POST /v1/integrations/webhook/actions"; open != want {
			t.Errorf("%s: needs no key = %v in the document, want %v", r, open, want)
		}
	}

	// Success codes: 201 for the two creating POSTs, 200 otherwise; every
	// authenticated route documents the 401.
	for r, op := range inDoc {
		want := "200"
		if r == "POST /v1/grants" || r == "POST /v1/agents" {
			want = "201"
		}
		var got []string
		for code := range op.Responses {
			if strings.HasPrefix(code, "2") {
				got = append(got, code)
			}
		}
		if len(got) != 1 || got[0] != want {
			t.Errorf("%s: success responses %v, want [%s]", r, got, want)
		}
		if _, ok := op.Responses["401"]; !ok && r != "GET /healthz" && r != "GET /readyz" {
			t.Errorf("%s: no 401 response documented", r)
		}
	}
}

// jsonFields returns the JSON member names a value of type t is encoded
// with, and which of them are always present (no omitempty/omitzero).
func jsonFields(t reflect.Type) (all, always []string) {
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		all = append(all, name)
		if !strings.Contains(","+opts+",", ",omitempty,") && !strings.Contains(","+opts+",", ",omitzero,") {
			always = append(always, name)
		}
	}
	sort.Strings(all)
	sort.Strings(always)
	return all, always
}

func diff(a, b []string) (onlyA, onlyB []string) {
	for _, x := range a {
		if !slices.Contains(b, x) {
			onlyA = append(onlyA, x)
		}
	}
	for _, x := range b {
		if !slices.Contains(a, x) {
			onlyB = append(onlyB, x)
		}
	}
	return onlyA, onlyB
}

// TestOpenAPISchemas checks that each schema's properties are exactly the
// JSON fields of the Go type the handler encodes or decodes, and, for
// responses, that "required" lists exactly the members always present.
func TestOpenAPISchemas(t *testing.T) {
	doc := loadOpenAPI(t)
	tests := []struct {
		schema string
		value  any
		// response: the type is encoded by the server, so required must be
		// exactly its always-present members. Inputs state validation rules
		// in required instead.
		response bool
	}{
		{"Grant", model.Grant{}, true},
		{"Identity", model.Identity{}, true},
		{"Instance", model.Instance{}, true},
		{"Finding", model.Finding{}, true},
		{"FindingsResponse", httpapi.FindingsResponse{}, true},
		{"Session", model.Session{}, true},
		{"Usage", model.Usage{}, true},
		{"PolicyDecision", model.PolicyDecision{}, true},
		{"PairDecision", model.PairDecision{}, true},
		{"Approval", model.Approval{}, true},
		{"SignIn", model.SignIn{}, true},
		{"Statement", scope.Statement{}, true},
		{"Event", httpapi.Event{}, true},
		{"Credentials", grants.Credentials{}, true},
		{"Report", auditlog.Report{}, true},
		{"Problem", auditlog.Problem{}, true},
		{"GrantResponse", httpapi.GrantResponse{}, true},
		{"ListResponse", httpapi.ListResponse{}, true},
		{"HistoryResponse", httpapi.HistoryResponse{}, true},
		{"SessionsResponse", httpapi.SessionsResponse{}, true},
		{"SessionResponse", httpapi.SessionResponse{}, true},
		{"IdentitiesResponse", httpapi.IdentitiesResponse{}, true},
		{"IdentityResponse", httpapi.IdentityResponse{}, true},
		{"AgentResponse", httpapi.AgentResponse{}, true},
		{"CheckpointResponse", httpapi.CheckpointResponse{}, true},
		{"RequestInput", grants.RequestInput{}, false},
		{"DecisionInput", httpapi.DecisionInput{}, false},
		{"AgentInput", httpapi.AgentInput{}, false},
		{"TargetsResponse", httpapi.TargetsResponse{}, true},
		{"TargetInfo", grants.TargetInfo{}, true},
		{"Permit", policy.Permit{}, true},
		{"ApproversResponse", httpapi.ApproversResponse{}, true},
		{"CommandResponse", httpapi.CommandResponse{}, true},
		{"CommandInput", httpapi.CommandInput{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.schema, func(t *testing.T) {
			s, ok := doc.Comps.Schemas[tt.schema]
			if !ok {
				t.Fatalf("no components.schemas.%s", tt.schema)
			}
			all, always := jsonFields(reflect.TypeOf(tt.value))
			var props []string
			for p := range s.Properties {
				props = append(props, p)
			}
			if onlyGo, onlyDoc := diff(all, props); len(onlyGo) > 0 || len(onlyDoc) > 0 {
				t.Errorf("%T JSON fields not in the schema: %v; schema properties not in %T: %v", tt.value, onlyGo, tt.value, onlyDoc)
			}
			for _, r := range s.Required {
				if !slices.Contains(props, r) {
					t.Errorf("required %q is not a property", r)
				}
			}
			if tt.response {
				if missing, extra := diff(always, s.Required); len(missing) > 0 || len(extra) > 0 {
					t.Errorf("always present but not required: %v; required but may be omitted: %v", missing, extra)
				}
			}
		})
	}

	// Enums that mirror Go constants.
	var codes []string
	for _, c := range []string{
		apierr.CodeInvalid, apierr.CodeUnauthorized, apierr.CodeForbidden, apierr.CodeNotFound,
		apierr.CodeConflict, apierr.CodeUnavailable, apierr.CodeInternal, apierr.CodePolicyDenied,
		apierr.CodeSelfApproval, apierr.CodeAlreadyExists, httpapi.CodeMethodNotAllowed,
		apierr.CodeResourceExhausted,
	} {
		codes = append(codes, c)
	}
	docCodes := doc.Comps.Schemas["Error"].Properties["error"].Properties["code"].Enum
	if missing, extra := diff(codes, docCodes); len(missing) > 0 || len(extra) > 0 {
		t.Errorf("Error code enum: missing %v, unknown %v", missing, extra)
	}
	if got := doc.Comps.Schemas["Error"].Properties["error"].Required; !slices.Equal(got, []string{"code", "message"}) {
		t.Errorf("Error.error required = %v, want [code message]", got)
	}
	var statuses []string
	for _, s := range []model.GrantStatus{model.Pending, model.Active, model.Expired, model.Revoked, model.Ended, model.Denied, model.Cancelled} {
		statuses = append(statuses, string(s))
	}
	if missing, extra := diff(statuses, doc.Comps.Schemas["GrantStatus"].Enum); len(missing) > 0 || len(extra) > 0 {
		t.Errorf("GrantStatus enum: missing %v, unknown %v", missing, extra)
	}
	for _, s := range doc.Comps.Schemas["GrantStatus"].Enum {
		if !model.GrantStatus(s).Valid() {
			t.Errorf("GrantStatus enum lists %q, which model does not accept", s)
		}
	}
}

// resolve follows a local "#/a/b" reference from the document root.
func resolve(root any, ref string) (any, bool) {
	path, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil, false
	}
	cur := root
	for _, part := range strings.Split(path, "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// TestOpenAPIReferences checks that every $ref resolves, that each
// operation declares exactly the path parameters of its path, and that the
// query parameters are the ones the handler reads.
func TestOpenAPIReferences(t *testing.T) {
	data, err := os.ReadFile(openAPIPath)
	if err != nil {
		t.Fatal(err)
	}
	var root map[string]any
	if err := yaml.Unmarshal(data, &root); err != nil {
		t.Fatal(err)
	}
	var walk func(at string, v any)
	walk = func(at string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if k == "$ref" {
					ref, _ := x.(string)
					if _, ok := resolve(root, ref); !ok {
						t.Errorf("%s: $ref %q does not resolve", at, ref)
					}
					continue
				}
				walk(at+"."+k, x)
			}
		case []any:
			for i, x := range v {
				walk(fmt.Sprintf("%s[%d]", at, i), x)
			}
		}
	}
	walk("", root)

	wantQuery := map[string][]string{
		"GET /v1/grants":               {"account", "after", "day", "identity", "limit", "since", "status", "target", "until"},
		"GET /v1/grants/{id}":          {"wait"},
		"GET /v1/audit/export":         {"account", "day"},
		"GET /v1/audit/consistency":    {"old"},
		"GET /v1/findings":             {"after", "day", "limit"},
		"GET /v1/grants/{id}/history":  {"after", "limit"},
		"GET /v1/grants/{id}/sessions": {"after", "limit"},
		"GET /v1/pending":              {"after", "limit"},
		"GET /v1/sessions/{id}":        {"after", "limit"},
	}
	paths, _ := root["paths"].(map[string]any)
	for path, item := range paths {
		ops, _ := item.(map[string]any)
		for method, op := range ops {
			if !httpMethods[method] {
				continue
			}
			route := strings.ToUpper(method) + " " + path
			var inPath, inQuery []string
			params, _ := op.(map[string]any)["parameters"].([]any)
			for _, p := range params {
				pm, _ := p.(map[string]any)
				if ref, ok := pm["$ref"].(string); ok {
					r, _ := resolve(root, ref)
					pm, _ = r.(map[string]any)
				}
				name, _ := pm["name"].(string)
				switch pm["in"] {
				case "path":
					inPath = append(inPath, name)
					if pm["required"] != true {
						t.Errorf("%s: path parameter %q not required", route, name)
					}
				case "query":
					inQuery = append(inQuery, name)
				default:
					t.Errorf("%s: parameter %q in %v", route, name, pm["in"])
				}
			}
			var want []string
			for _, seg := range strings.Split(path, "/") {
				if n, ok := strings.CutPrefix(seg, "{"); ok {
					want = append(want, strings.TrimSuffix(n, "}"))
				}
			}
			sort.Strings(inPath)
			sort.Strings(want)
			if !slices.Equal(inPath, want) {
				t.Errorf("%s: path parameters %v, want %v", route, inPath, want)
			}
			sort.Strings(inQuery)
			if !slices.Equal(inQuery, wantQuery[route]) {
				t.Errorf("%s: query parameters %v, want %v", route, inQuery, wantQuery[route])
			}
		}
	}
}
