package pgstore

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"
)

// storeIndex is one btree index the migrations create: its table, key
// columns and predicate ("" for none), as catalog.txt states it.
type storeIndex struct {
	name, table, cols, pred string
}

var indexLine = regexp.MustCompile(`^index (\w+): CREATE (?:UNIQUE )?INDEX (\w+) ON (\w+) USING btree \(([\w, ]+)\)(?: WHERE (.+))?$`)

// storeIndexes are the indexes of expectedCatalog, in its (sorted) order:
// those of one table are together.
var storeIndexes = func() []storeIndex {
	var out []storeIndex
	for _, l := range strings.Split(expectedCatalog, "\n") {
		if m := indexLine.FindStringSubmatch(l); m != nil {
			out = append(out, storeIndex{name: m[2], table: m[3], cols: m[4], pred: m[5]})
		} else if strings.HasPrefix(l, "index ") {
			panic("pgstore: catalog.txt: an index line this check cannot read: " + l)
		}
	}
	return out
}()

// indexContentDiffs compares what each index holds with what its table
// holds: the number of entries and a sum of hashes of their key values,
// read by an index-only scan of that index alone (whose values come from
// the index), against the same of the table's rows, read by a sequential
// scan. Whoever can edit the catalog or the files below SQL (a superuser,
// the host) can leave every row alone and make an index hold other keys,
// or miss rows: `grants --account` reads through grants_account_time, and
// would miss a grant the checks of the rows find. (A btree that
// PostgreSQL maintains cannot disagree with its table, whatever its owner
// does through SQL; amcheck would say more of a corrupt index, but it
// takes a superuser to install.) It runs after catalogDiffs found the
// indexes to be the migrations', and leaves the transaction's planner
// settings changed.
func indexContentDiffs(ctx context.Context, tx pgx.Tx) ([]string, error) {
	// Planned with every plan disabled but one, a query's cost passes
	// jit_above_cost however small its table: JIT would compile each.
	if _, err := tx.Exec(ctx, `SET LOCAL jit = off; SET LOCAL enable_seqscan = on; SET LOCAL enable_indexscan = off;
		SET LOCAL enable_indexonlyscan = off; SET LOCAL enable_bitmapscan = off`); err != nil {
		return nil, err
	}
	// The tables' side: one sequential scan of each table sums what each
	// of its indexes should hold.
	type sums struct{ n, sum string }
	want := map[string]sums{}
	for i := 0; i < len(storeIndexes); {
		table := storeIndexes[i].table
		var cols []string
		var names []string
		for ; i < len(storeIndexes) && storeIndexes[i].table == table; i++ {
			ix := storeIndexes[i]
			filter := ""
			if ix.pred != "" {
				filter = " FILTER (WHERE " + ix.pred + ")"
			}
			cols = append(cols, fmt.Sprintf("count(*)%s::text, COALESCE(sum(hash_record_extended(ROW(%s), 0)::numeric)%s, 0)::text", filter, ix.cols, filter))
			names = append(names, ix.name)
		}
		vals := make([]string, 2*len(names))
		dest := make([]any, len(vals))
		for j := range vals {
			dest[j] = &vals[j]
		}
		if err := tx.QueryRow(ctx, "SELECT "+strings.Join(cols, ", ")+" FROM "+table).Scan(dest...); err != nil {
			return nil, err
		}
		for j, name := range names {
			want[name] = sums{vals[2*j], vals[2*j+1]}
		}
	}
	// The indexes' side. Every other way to read the rows in an index's
	// order is disabled: the index-only scan of that index is the plan
	// (the others' keys or predicates differ), which EXPLAIN confirms.
	if _, err := tx.Exec(ctx, `SET LOCAL enable_seqscan = off; SET LOCAL enable_indexscan = on;
		SET LOCAL enable_indexonlyscan = on; SET LOCAL enable_sort = off`); err != nil {
		return nil, err
	}
	var out []string
	for _, ix := range storeIndexes {
		where := ""
		if ix.pred != "" {
			where = " WHERE " + ix.pred
		}
		q := fmt.Sprintf("SELECT count(*)::text, COALESCE(sum(hash_record_extended(ROW(%s), 0)::numeric), 0)::text FROM (SELECT %[1]s FROM %s%s ORDER BY %[1]s) s", ix.cols, ix.table, where)
		plan, err := tx.Query(ctx, "EXPLAIN "+q)
		if err != nil {
			return nil, err
		}
		lines, err := pgx.CollectRows(plan, pgx.RowTo[string])
		if err != nil {
			return nil, err
		}
		if p := strings.Join(lines, "\n"); !strings.Contains(p, "Index Only Scan using "+ix.name+" on "+ix.table) {
			out = append(out, fmt.Sprintf("index %s: could not be read alone to check it against its table; the planner chose:\n%s", ix.name, p))
			continue
		}
		var got sums
		if err := tx.QueryRow(ctx, q).Scan(&got.n, &got.sum); err != nil {
			return nil, err
		}
		if w := want[ix.name]; got != w {
			out = append(out, fmt.Sprintf("index %s: holds %s entries, its table %s rows (or their keys differ): reads through it miss or invent rows (the index was changed below SQL)", ix.name, got.n, w.n))
		}
	}
	if _, err := tx.Exec(ctx, "RESET jit; RESET enable_seqscan; RESET enable_indexscan; RESET enable_indexonlyscan; RESET enable_bitmapscan; RESET enable_sort"); err != nil {
		return nil, err
	}
	return out, nil
}
