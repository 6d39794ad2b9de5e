package pggw

import (
	"slices"
	"strings"
)

// A read keyword does not make a statement a read: SELECT calls functions,
// and functions PostgreSQL grants to PUBLIC change state visible to others
// (lo_from_bytea and lo_create make large objects, pg_notify signals
// listeners, pg_advisory_lock holds a lock, a SECURITY DEFINER function
// writes as its owner). DESIGN.md's "Fail closed" lets only what cannot
// change state travel before its record is durable, so a read statement is
// forwarded early only when every function it calls by name is one of the
// built-ins below, which only compute (callsOnlyPure); any other call, a
// schema-qualified one outside pg_catalog, or a quoted name that is not
// the built-in's, waits for its record like a write.
//
// What stays outside this check is what the database's own objects do when
// read: a view, a rule, a type's input function or an operator the DBA
// defined over a function with side effects. Those are the database's
// design, named in the statement's record, and documented.

// pureFuncs are built-in functions that only compute from their arguments
// and the catalog: aggregates, window functions, string, number, time,
// JSON, array and catalog helpers.
var pureFuncs = setOf(
	// aggregates and window functions
	"count", "sum", "avg", "min", "max", "stddev", "stddev_pop", "stddev_samp", "variance", "var_pop", "var_samp",
	"array_agg", "string_agg", "json_agg", "jsonb_agg", "json_object_agg", "jsonb_object_agg", "bool_and", "bool_or",
	"every", "bit_and", "bit_or", "percentile_cont", "percentile_disc", "mode", "corr", "covar_pop", "covar_samp",
	"rank", "dense_rank", "row_number", "ntile", "lag", "lead", "first_value", "last_value", "nth_value", "cume_dist", "percent_rank",
	// strings
	"lower", "upper", "length", "char_length", "character_length", "octet_length", "bit_length", "concat", "concat_ws",
	"replace", "split_part", "left", "right", "lpad", "rpad", "ltrim", "rtrim", "btrim", "initcap", "repeat", "reverse",
	"strpos", "substr", "md5", "sha224", "sha256", "sha384", "sha512", "encode", "decode", "format", "to_hex", "chr",
	"ascii", "translate", "starts_with", "quote_ident", "quote_literal", "quote_nullable", "regexp_replace",
	"regexp_matches", "regexp_match", "regexp_split_to_array", "regexp_split_to_table", "regexp_like", "regexp_count",
	"regexp_instr", "regexp_substr", "string_to_array", "string_to_table", "array_to_string", "to_char", "to_number",
	// numbers
	"abs", "ceil", "ceiling", "floor", "round", "trunc", "sign", "sqrt", "cbrt", "power", "pow", "exp", "ln", "log",
	"log10", "mod", "div", "pi", "width_bucket", "gcd", "lcm", "scale",
	// time
	"now", "clock_timestamp", "statement_timestamp", "transaction_timestamp", "timeofday", "to_date", "to_timestamp",
	"date_trunc", "date_part", "date_bin", "age", "make_date", "make_time", "make_timestamp", "make_timestamptz",
	"make_interval", "isfinite", "justify_days", "justify_hours", "justify_interval",
	// JSON
	"json_build_object", "jsonb_build_object", "json_build_array", "jsonb_build_array", "to_json", "to_jsonb",
	"row_to_json", "array_to_json", "json_object", "jsonb_object", "json_extract_path", "jsonb_extract_path",
	"json_extract_path_text", "jsonb_extract_path_text", "jsonb_set", "jsonb_insert", "jsonb_pretty", "jsonb_strip_nulls",
	"json_strip_nulls", "json_array_length", "jsonb_array_length", "json_array_elements", "jsonb_array_elements",
	"json_array_elements_text", "jsonb_array_elements_text", "json_each", "jsonb_each", "json_each_text",
	"jsonb_each_text", "json_object_keys", "jsonb_object_keys", "json_typeof", "jsonb_typeof", "jsonb_path_query",
	"jsonb_path_exists", "jsonb_path_match", "jsonb_path_query_array", "jsonb_path_query_first", "json_populate_record",
	"jsonb_populate_record", "json_to_record", "jsonb_to_record", "json_to_recordset", "jsonb_to_recordset",
	// arrays and sets
	"array_length", "array_upper", "array_lower", "array_dims", "array_ndims", "cardinality", "unnest",
	"array_position", "array_positions", "array_remove", "array_replace", "array_append", "array_prepend", "array_cat",
	"generate_series", "generate_subscripts",
	// text search
	"to_tsvector", "to_tsquery", "plainto_tsquery", "phraseto_tsquery", "websearch_to_tsquery", "ts_rank", "ts_rank_cd",
	"ts_headline", "setweight", "numnode", "querytree",
	// session and catalog information
	"version", "current_setting", "current_database", "current_schema", "current_schemas", "pg_typeof",
	"format_type", "obj_description", "col_description", "shobj_description", "pg_get_viewdef", "pg_get_constraintdef",
	"pg_get_indexdef", "pg_get_functiondef", "pg_get_function_arguments", "pg_get_function_result", "pg_get_expr",
	"pg_get_userbyid", "pg_get_serial_sequence", "pg_get_triggerdef", "pg_get_ruledef", "pg_table_size",
	"pg_relation_size", "pg_total_relation_size", "pg_indexes_size", "pg_database_size", "pg_size_pretty",
	"pg_column_size", "pg_backend_pid", "pg_postmaster_start_time", "inet_client_addr", "inet_server_addr",
	"has_table_privilege", "has_column_privilege", "has_schema_privilege", "has_database_privilege",
	"has_function_privilege", "has_sequence_privilege", "pg_table_is_visible", "pg_encoding_to_char", "pg_is_in_recovery",
	"to_regclass", "to_regtype", "to_regproc", "to_regnamespace", "pg_relation_filenode", "gen_random_uuid",
)

// parenWords are keywords and type names that "(" may follow without a
// function call: clauses, subqueries, SQL-standard forms the grammar spells
// with parentheses (CAST, COALESCE, EXTRACT…), and type modifiers
// (numeric(10,2)), which are casts that only compute. Each is a reserved or
// column-name keyword, which PostgreSQL never reads as the name of a
// function when it is not qualified, or the name of a built-in that only
// computes. Keywords that may also name a function ("over", "json",
// "rows"…) are keywordParen's.
var parenWords = setOf(
	"select", "from", "where", "and", "or", "not", "in", "exists", "any", "all", "some", "values", "as", "on", "using",
	"having", "group", "between", "case", "when", "then", "else", "array", "row", "cast", "coalesce", "nullif", "greatest", "least",
	"extract", "position", "substring", "overlay", "trim", "union", "intersect", "except", "with", "limit", "offset",
	"fetch", "distinct", "window", "for", "collate", "table", "only", "interval", "numeric", "decimal", "varchar",
	"char", "character", "bit", "varbit", "time", "timestamp", "timestamptz", "timetz", "float", "grouping",
	"normalize", "xmlelement", "xmlforest", "xmlconcat", "xmlattributes", "xmlexists", "xmlparse", "xmlpi", "xmlroot",
	"xmlserialize", "json_object", "asc", "desc", "returning", "default", "precision", "lateral",
)

// keywordParen reports whether the "(" after fn, an unqualified word
// (before[0], the tokens before it newest first), is grammar rather than a
// call, for the keywords that "(" follows in some clauses but that
// PostgreSQL also reads as the name of a function elsewhere: unreserved
// and type_func_name keywords, and words that are keywords only in later
// versions (JSON_QUERY, JSON_TABLE… are plain names up to PostgreSQL 16).
// "count(*) over (…)" is a window, "select over(1)" calls a function named
// over, which the DBA or any role with CREATE on a schema of the path may
// have defined. Each is grammar only after the tokens listed; anywhere
// else, and for every other keyword of the kind ("rows", "range", "is",
// "partition", "json"…), it is a call. known is false for other words.
func keywordParen(sql, fn string, before []token) (grammar, known bool) {
	var prev, prev2 token
	if len(before) >= 2 {
		prev = before[1]
	}
	if len(before) >= 3 {
		prev2 = before[2]
	}
	word := func(t token, ws ...string) bool {
		for _, w := range ws {
			if isWord(sql, t, w) {
				return true
			}
		}
		return false
	}
	closeParen := len(before) >= 2 && prev.kind == tOther && sql[prev.start] == ')'
	// What ends an operand or names a table: a ")", a literal, a quoted
	// name. A plain word there may as well be a keyword that an
	// expression follows, and so is not one of these.
	ends := closeParen || (len(before) >= 2 && (prev.kind == tString || prev.kind == tIdent))
	switch fn {
	case "over", "filter", "repeatable":
		// count(*) over (…), count(*) filter (where …), tablesample
		// m (…) repeatable (…).
		return closeParen, true
	case "like", "ilike", "escape":
		return ends, true
	case "join":
		return ends || word(prev, "cross", "inner", "left", "right", "full", "outer", "natural"), true
	case "by":
		return word(prev, "order", "group", "partition"), true
	case "zone":
		return word(prev, "time"), true
	case "varying":
		return word(prev, "character", "char", "bit", "nchar"), true
	case "sets":
		return word(prev, "grouping"), true
	case "cube", "rollup":
		return word(prev, "by") && word(prev2, "group"), true
	case "materialized":
		return word(prev, "as") || (word(prev, "not") && word(prev2, "as")), true
	}
	return false, false
}

// BuiltinNames lists the names whose unqualified calls a read may make
// and still travel before its record is durable (pureFuncs, and the
// words of parenWords that name functions), sorted: a function of the
// database's of one of these names may catch such a call
// (pgroles.WithBuiltinNames, Role.ShadowsBuiltins).
func BuiltinNames() []string {
	names := make([]string, 0, len(pureFuncs)+len(parenWords))
	for n := range pureFuncs {
		names = append(names, n)
	}
	for n := range parenWords {
		if !pureFuncs[n] {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}

func setOf(words ...string) map[string]bool {
	m := make(map[string]bool, len(words))
	for _, w := range words {
		m[w] = true
	}
	return m
}

// callsOnlyPure reports whether every function sql calls by name is in
// pureFuncs, unqualified or qualified by pg_catalog, with either reading
// of backslashes in plain literals (so that no reading hides a call).
func callsOnlyPure(sql string) bool { return callsOnly(sql, &pureRule) }

// callRule is what callsOnly accepts.
type callRule struct {
	// funcs are the functions it accepts, unqualified or named with
	// pg_catalog.
	funcs map[string]bool
	// anyCatalog: any function named with pg_catalog too.
	anyCatalog bool
	// columnLists: "(" after a table named after INTO, COPY or TABLE (or
	// IF NOT EXISTS), after ON CONFLICT or opening COPY's query is not a
	// call. Not for reads, which have none of these, and whose check
	// errs on no side.
	columnLists bool
}

// pureRule is callsOnlyPure's.
var pureRule = callRule{funcs: pureFuncs}

// callsOnly reports whether every function sql calls by name is one that
// rule accepts (callsOnlyPure).
func callsOnly(sql string, rule *callRule) bool {
	if strings.IndexByte(sql, '(') < 0 {
		return true // no call at all: the common read
	}
	readings := []bool{false, true}
	if strings.IndexByte(sql, '\\') < 0 {
		readings = readings[:1] // without a backslash both read alike
	}
	for _, backslashQuotes := range readings {
		sc := scanner{s: sql, backslashQuotes: backslashQuotes}
		var prev [4]token // the four tokens before the current one, newest first
		n := 0
		for {
			t, ok := sc.next()
			if !ok {
				break
			}
			if t.kind == tOther && sql[t.start] == '(' && n > 0 && !pureCall(sql, prev[:min(n, 4)], rule) {
				return false
			}
			prev[3], prev[2], prev[1], prev[0] = prev[2], prev[1], prev[0], t
			n++
		}
	}
	return true
}

// columnList reports whether the "(" after before (newest first) opens a
// column list or COPY's query (callRule.columnLists).
func columnList(sql string, before []token, qualified bool) bool {
	k := 1 // the token before the table's name
	if qualified {
		k = 3
	}
	if len(before) > k {
		for _, w := range []string{"into", "copy", "table", "exists"} {
			if isWord(sql, before[k], w) {
				return true
			}
		}
	}
	if qualified {
		return false
	}
	start := len(before) == 1 || before[1].kind == tSemi
	return isWord(sql, before[0], "conflict") && len(before) > 1 && isWord(sql, before[1], "on") ||
		isWord(sql, before[0], "copy") && start
}

// pureCall says whether the "(" that follows before (newest first) opens
// something other than a call of a function rule does not accept.
func pureCall(sql string, before []token, rule *callRule) bool {
	name := before[0]
	var fn string
	switch name.kind {
	case tWord:
		// PostgreSQL folds ASCII letters only: strings.ToLower would fold
		// the Kelvin sign of "RANK" (U+212A) into a built-in's name.
		fn = lowerASCII(sql[name.start:name.end])
	case tIdent:
		// A quoted name is exact: "lower" is the built-in, "LOWER" is not.
		fn = sql[name.bodyStart:name.bodyEnd]
	default:
		return true // a subexpression, a list, an argument
	}
	qualified := len(before) >= 2 && before[1].kind == tOther && sql[before[1].start] == '.'
	if rule.columnLists && columnList(sql, before, qualified) {
		return true
	}
	if !qualified && name.kind == tWord {
		if parenWords[fn] {
			return true
		}
		if grammar, known := keywordParen(sql, fn, before); known {
			return grammar
		}
	}
	// schema.fn( is pg_catalog's only if the schema says so.
	catalog := qualified && len(before) >= 3 && isWord(sql, before[2], "pg_catalog")
	if catalog && rule.anyCatalog {
		return true
	}
	return rule.funcs[fn] && (!qualified || catalog)
}

// lowerASCII folds A-Z to a-z and leaves every other byte, as PostgreSQL's
// downcase_identifier does for an unquoted name.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] >= 'A' && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}
