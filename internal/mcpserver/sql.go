package mcpserver

import (
	"context"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/airlock-dev/airlock/internal/credenv"
)

// Bounds of sql_query.
const (
	MaxRows        = 1000
	MaxResultBytes = 1 << 20
	MaxStatement   = 64 << 10
	sqlTimeout     = 60 * time.Second
)

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

func (s *server) sqlQuery(ctx context.Context, _ *mcp.CallToolRequest, in SQLInput) (*mcp.CallToolResult, SQLOutput, error) {
	if strings.TrimSpace(in.Statement) == "" {
		return nil, SQLOutput{}, errors.New("statement: a SQL statement is required")
	}
	if len(in.Statement) > MaxStatement {
		return nil, SQLOutput{}, fmt.Errorf("statement: at most %d bytes", MaxStatement)
	}
	cr, err := s.c.Credentials(ctx, in.GrantID)
	if err != nil {
		return nil, SQLOutput{}, s.fail("sql_query", in.GrantID, err)
	}
	sc := newScrubber(cr.SecretAccessKey, cr.SessionToken, s.c.Token)
	if cr.TargetKind != "postgres" {
		return nil, SQLOutput{}, fmt.Errorf("grant %s is on %s target %s; sql_query needs a postgres target (use run_with_grant)", cr.GrantID, cr.TargetKind, cr.Target)
	}
	if cr.Endpoint == nil || cr.Endpoint.Host == "" {
		return nil, SQLOutput{}, fmt.Errorf("the PostgreSQL gateway for %s is not running", cr.Target)
	}
	caFile, err := credenv.WriteCA(cr)
	if err != nil {
		return nil, SQLOutput{}, sc.err(err)
	}
	u := url.URL{Scheme: "postgres", Host: net.JoinHostPort(cr.Endpoint.Host, strconv.Itoa(cr.Endpoint.Port)), Path: "/" + cr.Endpoint.Database}
	q := url.Values{"application_name": {"airlock-mcp"}}
	if cr.Endpoint.SSLMode != "" {
		q.Set("sslmode", cr.Endpoint.SSLMode)
	}
	if caFile != "" {
		q.Set("sslrootcert", caFile)
	}
	u.RawQuery = q.Encode()
	cfg, err := pgx.ParseConfig(u.String())
	if err != nil {
		return nil, SQLOutput{}, sc.err(err)
	}
	// Set after parsing so that no environment variable (PGPASSWORD...)
	// of this process stands in for the grant's.
	cfg.User, cfg.Password = cr.AccessKeyID, cr.SecretAccessKey
	qctx, cancel := context.WithTimeout(ctx, sqlTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(qctx, cfg)
	if err != nil {
		return nil, SQLOutput{}, s.fail("sql_query", in.GrantID, sc.err(err))
	}
	defer conn.Close(context.WithoutCancel(ctx))
	out, err := runQuery(qctx, conn, in.Statement)
	if err != nil {
		return nil, SQLOutput{}, s.fail("sql_query", in.GrantID, sc.err(err))
	}
	s.logger.Info("mcp tool", "tool", "sql_query", "identity", s.who.Name, "grant", in.GrantID, "rows", out.RowCount, "truncated", out.Truncated)
	return nil, out, nil
}

// runQuery runs one statement (the extended protocol takes exactly one)
// and collects its rows within the bounds.
func runQuery(ctx context.Context, conn *pgx.Conn, stmt string) (SQLOutput, error) {
	rows, err := conn.Query(ctx, stmt)
	if err != nil {
		return SQLOutput{}, err
	}
	defer rows.Close()
	out := SQLOutput{Columns: []string{}, Rows: [][]any{}}
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
			row[i] = jsonValue(v)
		}
		b, _ := json.Marshal(row)
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
		return SQLOutput{}, err
	}
	out.RowCount = len(out.Rows)
	out.Command = rows.CommandTag().String()
	return out, nil
}

// jsonValue turns a decoded PostgreSQL value into one JSON shows as is.
func jsonValue(v any) any {
	switch x := v.(type) {
	case nil, bool, string, int16, int32, int64, int, float32, float64:
		return x
	case []byte:
		return x // base64 in JSON
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
