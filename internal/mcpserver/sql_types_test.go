package mcpserver

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/airlock-dev/airlock/internal/testenv"
)

// queryJSON runs stmt as sql_query does and returns its rows as JSON.
func queryJSON(t *testing.T, stmt string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, testenv.PostgresDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	out, err := runQuery(ctx, conn, stmt)
	if err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
	b, err := json.Marshal(out.Rows)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestQueryJSONNumbersExact: numbers inside json and jsonb values come
// back as PostgreSQL holds them. Decoded into float64 they were rounded:
// an id of 12345678901234567890 came back as 12345678901234567000.
func TestQueryJSONNumbersExact(t *testing.T) {
	got := queryJSON(t, `select '{"id": 12345678901234567890, "price": 0.10}'::json, '{"id": 9007199254740993}'::jsonb,`+
		` '12345678901234567890'::jsonb, array['{"n": 12345678901234567891}'::jsonb]`)
	want := `[[{"id":12345678901234567890,"price":0.10},{"id":9007199254740993},12345678901234567890,[{"n":12345678901234567891}]]]`
	if got != want {
		t.Fatalf("rows\n got %s\nwant %s", got, want)
	}
}

// TestQueryValuesReadable: values whose Go form JSON shows as something
// else come back as PostgreSQL writes them. Before, a uuid was a list of
// 16 numbers, xml was base64, a "char" (pg_class.relkind) its code, and a
// range pgx's struct ({"Lower":1,"Upper":5,"LowerType":105,...}).
func TestQueryValuesReadable(t *testing.T) {
	got := queryJSON(t, `select '6ba7b810-9dad-11d1-80b4-00c04fd430c8'::uuid, array['00000000-0000-0000-0000-0000000000ff'::uuid],`+
		` '<a href="x">t</a>'::xml, 'r'::"char", array['i'::"char"], int4range(1, 5), '(,10]'::int8range, 'empty'::numrange,`+
		` '{[1,3), [5,7)}'::int4multirange, array['NaN'::float8, 1]`)
	want := `[["6ba7b810-9dad-11d1-80b4-00c04fd430c8",["00000000-0000-0000-0000-0000000000ff"],` +
		`"\u003ca href=\"x\"\u003et\u003c/a\u003e","r",["i"],"[1,5)","(,11)","empty","{[1,3),[5,7)}",["NaN",1]]]`
	if got != want {
		t.Fatalf("rows\n got %s\nwant %s", got, want)
	}
}

func TestFirstWord(t *testing.T) {
	for stmt, want := range map[string]string{
		"copy t from stdin":                   "copy",
		"  \n\tCOPY(select 1) to stdout":      "COPY",
		"-- c\n/* a /* nested */ b */ copy t": "copy",
		"/* copy */ select 1":                 "select",
		"-- copy":                             "",
		"/* unterminated copy":                "",
		"select 1; copy t to stdout":          "select",
		"copy_rows()":                         "copy_rows",
	} {
		if got := firstWord(stmt); got != want {
			t.Errorf("firstWord(%q) = %q, want %q", stmt, got, want)
		}
	}
}

// TestQueryArraysKeepTheirShape: a multidimensional array comes back
// nested as it is. pgx decodes every array into one flat list, so
// {{1,2},{3,4}} came back as [1,2,3,4].
func TestQueryArraysKeepTheirShape(t *testing.T) {
	got := queryJSON(t, `select '{{1,2,3},{4,5,6}}'::int[], '[0:1][1:1][1:2]={{{a,b}},{{c,NULL}}}'::text[], '{}'::int[][], array[[1.5]], array[1,2]`)
	want := `[[[[1,2,3],[4,5,6]],[[["a","b"]],[["c",null]]],[],[["1.5"]],[1,2]]]`
	if got != want {
		t.Fatalf("rows\n got %s\nwant %s", got, want)
	}
}
