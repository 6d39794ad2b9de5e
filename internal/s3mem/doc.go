// Package s3mem is a small in-memory S3-compatible server. It is the
// upstream of `airlock demo`, which must run with nothing installed, and of
// the AWS gateway's unit tests.
//
// It is deliberately strict where a real upstream is strict: every request
// must carry a valid SigV4 signature (Authorization header or presigned
// query) made with the one access key pair the server was created with, and
// uploads are read through the signature verifier's body reader so a
// tampered payload is refused. Requests counts the requests that passed
// authentication, so a test can prove that a call the gateway refused never
// reached the upstream.
//
// Only path-style addressing is served (http://host/bucket/key). Objects
// live in memory behind one mutex; the total bytes held (objects and
// multipart parts) are capped so a test cannot exhaust the machine's
// memory. Stored byte slices are never modified after they are stored, so
// GetObject streams from them without holding the lock.
package s3mem
