// Package sessions records what the gateways see: a session's start,
// every call's request and result, its end, the summary row (calls,
// bytes, actions used) that the review reads, and the attempts refused
// before any session could start.
//
// The control plane decides whether a session may start (the grant is
// live, the credential has not moved); a Recorder then writes it. Its
// recording is what the product's guarantees rest on:
//
//   - A session's start and every call's request are plain appends to the
//     audit log, durable before the gateway goes on: Request returns once
//     the record is durable (durable before forward, for calls that can
//     change state), and RequestAsync returns a wait that the gateway
//     calls before any byte of the answer reaches the client (durable
//     before disclosure, for reads). A call whose record fails is refused.
//
//   - Results (rows, bytes, status, duration) describe what already
//     happened, so they are batched: one session.results entry holds a
//     session's results, written when resultsBatch are waiting and at the
//     latest resultsInterval after the first, always before the session's
//     end. A crash can lose at most resultsInterval of results; the
//     requests are all there.
//
//   - The summary row is written lazily, by the flusher (every
//     flushInterval), at the session's end, and before any read of
//     sessions or usage (Flush), and it always summarises a prefix of the
//     session's logged calls: the store never holds what the log does not
//     explain.
//
//   - A session's end is one entry and the row's end time. If the log
//     cannot take it, the row stays open and the end, with its true time,
//     is written by the flusher once the log takes writes again.
//
//   - A refused attempt (unknown credential, bad signature, …) is written
//     at once, or, past gateway.RejectPolicy's bounds, counted into a
//     summary the flusher writes: the attempts' rate is the client's to
//     choose, and the log's cost must stay bounded.
//
// Among replicas sharing a store, another replica may end a session it
// took for abandoned (its replica gone); a Recorder then never writes that
// session's row or end again (EndedElsewhere).
package sessions
