package mcpserver

import (
	"bytes"
	"context"
	"crypto/tls"
	"database/sql/driver"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/airlock-dev/airlock/internal/credenv"
)

// Bounds of sql_query.
const (
	MaxRows        = 1000
	MaxResultBytes = 1 << 20
	MaxStatement   = 64 << 10
	// maxMessage bounds one message from the gateway (a row, as
	// PostgreSQL sends it), so that a row far larger than the result may
	// hold is refused before it is read: pgx would otherwise take up to
	// 1 GiB into memory for it. A row's wire size can exceed its JSON
	// (binary integers, arrays), hence the margin.
	maxMessage = 4 * MaxResultBytes
)

// sqlTimeout bounds one sql_query call, connecting included (a variable
// for tests).
var sqlTimeout = 60 * time.Second

// SQLInput is sql_query's arguments.
type SQLInput struct {
	GrantID   string `json:"grant_id" jsonschema:"an active grant of yours on a postgres target (g_...)"`
	Statement string `json:"statement" jsonschema:"exactly one SQL statement, e.g. select id, status from public.orders where id = 42"`
}

// SQLOutput is sql_query's result.
type SQLOutput struct {
	Columns   []string `json:"columns" jsonschema:"the result's column names"`
	Rows      [][]any  `json:"rows" jsonschema:"the rows, each a list of values in column order"`
	RowCount  int      `json:"row_count" jsonschema:"rows returned here"`
	Command   string   `json:"command" jsonschema:"the command tag, such as SELECT 3 or UPDATE 1"`
	Truncated bool     `json:"truncated"`
	Note      string   `json:"note,omitempty"`
}

func (s *server) sqlQuery(ctx context.Context, _ *mcp.CallToolRequest, in SQLInput) (*mcp.CallToolResult, any, error) {
	if err := checkGrantID(in.GrantID); err != nil {
		return nil, nil, err
	}
	if strings.TrimSpace(in.Statement) == "" {
		return nil, nil, errors.New("statement: a SQL statement is required")
	}
	if len(in.Statement) > MaxStatement {
		return nil, nil, fmt.Errorf("statement: at most %d bytes", MaxStatement)
	}
	if strings.EqualFold(firstWord(in.Statement), "copy") {
		// Its data would go over the connection outside any result: COPY
		// FROM STDIN waited for rows until the 60-second timeout, COPY TO
		// STDOUT returned none.
		return nil, nil, errors.New("statement: sql_query cannot run COPY, which sends or receives its data outside a result; use SELECT to read rows and INSERT to write them")
	}
	cr, err := s.c.Credentials(ctx, in.GrantID)
	if err != nil {
		return nil, nil, s.fail("sql_query", in.GrantID, err)
	}
	sc := newScrubber(cr.SecretAccessKey, cr.SessionToken, s.c.Token)
	if cr.TargetKind != "postgres" {
		return nil, nil, fmt.Errorf("grant %s is on %s target %s; sql_query needs a postgres target (use run_with_grant)", cr.GrantID, cr.TargetKind, cr.Target)
	}
	if cr.Endpoint == nil || cr.Endpoint.Host == "" {
		return nil, nil, fmt.Errorf("the PostgreSQL gateway for %s is not running", cr.Target)
	}
	caFile, err := credenv.WriteCA(cr)
	if err != nil {
		return nil, nil, sc.err(err)
	}
	u := url.URL{Scheme: "postgres", Host: net.JoinHostPort(cr.Endpoint.Host, strconv.Itoa(cr.Endpoint.Port)), Path: "/" + cr.Endpoint.Database}
	q := url.Values{"application_name": {"airlock-mcp"}}
	if cr.Endpoint.SSLMode != "" {
		q.Set("sslmode", credenv.SSLModeFor(cr.Endpoint.SSLMode, s.opts.ClientCert))
	}
	if caFile != "" {
		q.Set("sslrootcert", caFile)
	}
	u.RawQuery = q.Encode()
	cfg, err := pgx.ParseConfig(u.String())
	if err != nil {
		return nil, nil, sc.err(err)
	}
	// Set after parsing so that no environment variable (PGPASSWORD...)
	// of this process stands in for the grant's.
	cfg.User, cfg.Password = cr.AccessKeyID, cr.SecretAccessKey
	if err := s.presentClientCert(cfg); err != nil {
		return nil, nil, sc.err(err)
	}
	if dial := s.opts.DialPostgres; dial != nil {
		// The relay reaches the gateway itself; the endpoint's host stays
		// the name TLS verifies, and is not looked up.
		next := cfg.DialFunc
		cfg.LookupFunc = func(_ context.Context, host string) ([]string, error) { return []string{host}, nil }
		cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
			nc, err := dial(ctx)
			if errors.Is(err, ErrNotRelayed) {
				return next(ctx, network, addr)
			}
			return nc, err
		}
	}
	qctx, cancel := context.WithTimeout(ctx, sqlTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(qctx, cfg)
	if err != nil {
		return nil, nil, s.fail("sql_query", in.GrantID, sc.err(err))
	}
	defer conn.Close(context.WithoutCancel(ctx))
	out, err := runQuery(qctx, conn, in.Statement)
	if err != nil && errors.Is(qctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
		// Not pgx's "timeout: context deadline exceeded": what happened
		// and what to do.
		err = fmt.Errorf("the statement did not finish within sql_query's %s limit and was cancelled; narrow it (WHERE, LIMIT) or make it cheaper", sqlTimeout)
	}
	if err != nil {
		return nil, nil, s.fail("sql_query", in.GrantID, sc.err(err))
	}
	s.logger.Info("mcp tool", "tool", "sql_query", "identity", s.who.Name, "grant", in.GrantID, "rows", out.RowCount, "truncated", out.Truncated)
	res, err := exactResult(out)
	return res, nil, err
}

// presentClientCert has cfg's TLS present the agent's client certificate
// (Options.ClientCert), loaded here rather than named to pgx (sslcert,
// sslkey), which reads only the first PEM block of the key's file: the
// CLI accepts the key in the certificate's file. The sslmode is require
// or stricter then (credenv.SSLModeFor), so there is no plaintext
// fallback to leave without it.
func (s *server) presentClientCert(cfg *pgx.ConnConfig) error {
	cc := s.opts.ClientCert
	if cc.Cert == "" {
		return nil
	}
	key := cc.Key
	if key == "" {
		key = cc.Cert
	}
	pair, err := tls.LoadX509KeyPair(cc.Cert, key)
	if err != nil {
		return fmt.Errorf("AIRLOCK_CLIENT_CERT %s, AIRLOCK_CLIENT_KEY %s: %w", cc.Cert, key, err)
	}
	for _, tc := range tlsConfigs(cfg) {
		tc.Certificates = []tls.Certificate{pair}
	}
	return nil
}

// tlsConfigs are the TLS configurations of cfg and of its fallbacks.
func tlsConfigs(cfg *pgx.ConnConfig) []*tls.Config {
	var out []*tls.Config
	if cfg.TLSConfig != nil {
		out = append(out, cfg.TLSConfig)
	}
	for _, fb := range cfg.Fallbacks {
		if fb.TLSConfig != nil {
			out = append(out, fb.TLSConfig)
		}
	}
	return out
}

// firstWord is the statement's first word, after blanks and comments
// (-- to the end of the line, and /* */, which nest).
func firstWord(stmt string) string {
	s := stmt
	for {
		s = strings.TrimLeft(s, " \t\r\n\f\v")
		switch {
		case strings.HasPrefix(s, "--"):
			i := strings.IndexByte(s, '\n')
			if i < 0 {
				return ""
			}
			s = s[i+1:]
		case strings.HasPrefix(s, "/*"):
			depth, i := 0, 0
			for i < len(s) && (depth > 0 || i == 0) {
				switch {
				case strings.HasPrefix(s[i:], "/*"):
					depth, i = depth+1, i+2
				case strings.HasPrefix(s[i:], "*/"):
					depth, i = depth-1, i+2
				default:
					i++
				}
			}
			s = s[i:]
		default:
			end := strings.IndexFunc(s, func(r rune) bool {
				return !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
			})
			if end < 0 {
				end = len(s)
			}
			return s[:end]
		}
	}
}

// sqlOutputSchema is sql_query's declared output schema, as the SDK
// would infer it from SQLOutput.
var sqlOutputSchema = func() *jsonschema.Schema {
	s, err := jsonschema.For[SQLOutput](nil)
	if err != nil {
		panic(err)
	}
	return s
}()

// exactResult is out as sql_query's result, in this package's encoding.
// The SDK checks a typed tool's result against its schema by decoding it
// into float64s and encoding that again, which rounded every number
// beyond 2^53: a bigint id of 9007199254740993 came back as
// 9007199254740992, in the text the model reads too. So sql_query is
// registered without an output type (its schema is declared as
// sqlOutputSchema) and sends the bytes encoded here.
//
// It does not escape <, > and & as \u003c, \u003e and \u0026, as
// json.Marshal does for HTML pages: a model reading a row of HTML or XML
// read "\u003cdiv\u003e".
func exactResult(out SQLOutput) (*mcp.CallToolResult, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		return nil, err
	}
	b := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	return &mcp.CallToolResult{StructuredContent: json.RawMessage(b), Content: []mcp.Content{&mcp.TextContent{Text: string(b)}}}, nil
}

// runQuery runs one statement (the extended protocol takes exactly one)
// and collects its rows within the bounds.
func runQuery(ctx context.Context, conn *pgx.Conn, stmt string) (SQLOutput, error) {
	conn.PgConn().Frontend().SetMaxBodyLen(maxMessage)
	readableTypes(conn.TypeMap())
	out := SQLOutput{Columns: []string{}, Rows: [][]any{}}
	rows, err := conn.Query(ctx, stmt)
	if err != nil {
		if tooLarge(err, &out) {
			return out, nil
		}
		return SQLOutput{}, err
	}
	defer rows.Close()
	for _, f := range rows.FieldDescriptions() {
		out.Columns = append(out.Columns, f.Name)
	}
	size := 0
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return SQLOutput{}, err
		}
		row := make([]any, len(vals))
		for i, v := range vals {
			if _, ok := v.([]any); ok {
				v = shaped(conn.TypeMap(), rows.FieldDescriptions()[i], rows.RawValues()[i], v)
			}
			row[i] = jsonValue(v)
		}
		// The size counted must be the size sent: a row that does not
		// encode (a NaN inside an array) would otherwise count as 0 bytes
		// and let the result grow without bound.
		b, err := json.Marshal(row)
		if err != nil {
			for i, v := range row {
				if _, err := json.Marshal(v); err != nil {
					row[i] = fmt.Sprint(v)
				}
			}
			if b, err = json.Marshal(row); err != nil {
				return SQLOutput{}, err
			}
		}
		if len(out.Rows) >= MaxRows || size+len(b) > MaxResultBytes {
			out.Truncated = true
			out.Note = fmt.Sprintf("result truncated after %d rows (limits: %d rows, %d bytes); add a WHERE or LIMIT", len(out.Rows), MaxRows, MaxResultBytes)
			break
		}
		size += len(b)
		out.Rows = append(out.Rows, row)
	}
	rows.Close()
	if err := rows.Err(); err != nil && !out.Truncated {
		if tooLarge(err, &out) {
			return out, nil
		}
		return SQLOutput{}, err
	}
	out.RowCount = len(out.Rows)
	out.Command = rows.CommandTag().String()
	return out, nil
}

// shaped is v, an array column's value, nested as the array's dimensions
// are: pgx gives every array as one flat list, so {{1,2},{3,4}} came back
// as [1,2,3,4].
func shaped(m *pgtype.Map, f pgconn.FieldDescription, raw []byte, v any) any {
	t, ok := m.TypeForOID(f.DataTypeOID)
	if !ok {
		return v
	}
	if _, ok := t.Codec.(*pgtype.ArrayCodec); !ok {
		return v
	}
	var a pgtype.Array[any]
	if m.Scan(f.DataTypeOID, f.Format, raw, &a) != nil || len(a.Dims) < 2 {
		return v
	}
	var nest func(elems []any, dims []pgtype.ArrayDimension) []any
	nest = func(elems []any, dims []pgtype.ArrayDimension) []any {
		if len(dims) == 1 {
			return elems
		}
		n := int(dims[0].Length)
		step := len(elems) / max(n, 1)
		out := make([]any, n)
		for i := range out {
			out[i] = nest(elems[i*step:(i+1)*step], dims[1:])
		}
		return out
	}
	return nest(a.Elements, a.Dims)
}

// tooLarge reports whether err is a message from the gateway over
// maxMessage, and if so marks out truncated at the rows it holds.
func tooLarge(err error, out *SQLOutput) bool {
	var big *pgproto3.ExceededMaxBodyLenErr
	if !errors.As(err, &big) {
		return false
	}
	out.RowCount, out.Truncated = len(out.Rows), true
	out.Note = fmt.Sprintf("result truncated after %d rows: the next row is %d bytes, over the %d-byte limit of one row; select fewer or shorter columns",
		len(out.Rows), big.ActualBodyLen, maxMessage)
	return true
}

// readableTypes makes m decode the types that it would otherwise decode
// into values JSON shows wrongly: json and jsonb (and arrays of them) keep
// their numbers as written (decoded into float64, as pgx does by default,
// an id such as 12345678901234567890 came back as 12345678901234567000,
// and 0.10 as 0.1); xml is its text (decoded as bytes, it was shown in
// base64); "char", the catalogs' kind codes (pg_class.relkind...), is its
// one character (decoded as a rune, "r" was shown as 114).
func readableTypes(m *pgtype.Map) {
	exact := func(data []byte, v any) error {
		d := json.NewDecoder(bytes.NewReader(data))
		d.UseNumber()
		return d.Decode(v)
	}
	xmlText := func(data []byte, v any) error {
		if p, ok := v.(*any); ok {
			*p = string(data)
			return nil
		}
		return xml.Unmarshal(data, v)
	}
	for _, t := range []struct {
		name          string
		oid, arrayOID uint32
		codec         pgtype.Codec
	}{
		{"json", pgtype.JSONOID, pgtype.JSONArrayOID, &pgtype.JSONCodec{Marshal: json.Marshal, Unmarshal: exact}},
		{"jsonb", pgtype.JSONBOID, pgtype.JSONBArrayOID, &pgtype.JSONBCodec{Marshal: json.Marshal, Unmarshal: exact}},
		{"xml", pgtype.XMLOID, pgtype.XMLArrayOID, &pgtype.XMLCodec{Marshal: xml.Marshal, Unmarshal: xmlText}},
		{"char", pgtype.QCharOID, pgtype.QCharArrayOID, charCodec{}},
	} {
		et := &pgtype.Type{Name: t.name, OID: t.oid, Codec: t.codec}
		m.RegisterType(et)
		m.RegisterType(&pgtype.Type{Name: "_" + t.name, OID: t.arrayOID, Codec: &pgtype.ArrayCodec{ElementType: et}})
	}
}

// charCodec decodes "char" as a one-character string.
type charCodec struct{ pgtype.QCharCodec }

func (c charCodec) DecodeValue(m *pgtype.Map, oid uint32, format int16, src []byte) (any, error) {
	v, err := c.QCharCodec.DecodeValue(m, oid, format, src)
	if r, ok := v.(rune); ok && err == nil {
		return string(r), nil
	}
	return v, err
}

// jsonValue turns a decoded PostgreSQL value into one JSON shows as is.
func jsonValue(v any) any {
	switch x := v.(type) {
	case nil, bool, string, int16, int32, int64, int, json.Number:
		return x
	case float32:
		return jsonFloat(float64(x), x)
	case float64:
		return jsonFloat(x, x)
	case []byte:
		return x // base64 in JSON
	case [16]byte: // a uuid, which is otherwise a list of 16 numbers
		return fmt.Sprintf("%x-%x-%x-%x-%x", x[0:4], x[4:6], x[6:8], x[8:10], x[10:16])
	case []any: // an array or a record: each element as above
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonValue(e)
		}
		return out
	case pgtype.Range[any]: // otherwise {"Lower":1,"Upper":5,"LowerType":105,...}
		return rangeText(x)
	case pgtype.Multirange[pgtype.Range[any]]:
		rs := make([]string, len(x))
		for i, r := range x {
			rs[i] = rangeText(r)
		}
		return "{" + strings.Join(rs, ",") + "}"
	case time.Time:
		return x.Format(time.RFC3339Nano)
	case driver.Valuer:
		if dv, err := x.Value(); err == nil {
			if _, again := dv.(driver.Valuer); !again {
				return jsonValue(dv)
			}
		}
	case fmt.Stringer:
		return x.String()
	}
	if _, err := json.Marshal(v); err == nil {
		return v
	}
	return fmt.Sprint(v)
}

// rangeText is a range as PostgreSQL writes it: [1,5), (,10], empty.
func rangeText(r pgtype.Range[any]) string {
	if r.LowerType == pgtype.Empty {
		return "empty"
	}
	bound := func(t pgtype.BoundType, v any) string {
		if t == pgtype.Unbounded {
			return ""
		}
		if s, ok := jsonValue(v).(string); ok {
			return s
		}
		b, _ := json.Marshal(jsonValue(v))
		return string(b)
	}
	open, closing := "(", ")"
	if r.LowerType == pgtype.Inclusive {
		open = "["
	}
	if r.UpperType == pgtype.Inclusive {
		closing = "]"
	}
	return open + bound(r.LowerType, r.Lower) + "," + bound(r.UpperType, r.Upper) + closing
}

// jsonFloat is a float as JSON can carry it: NaN and the infinities (which
// JSON has no number for) as PostgreSQL spells them.
func jsonFloat(f float64, v any) any {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	return v
}
