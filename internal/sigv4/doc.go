// Package sigv4 verifies AWS Signature Version 4 on the server side, the
// way Amazon S3 does, so that the Airlock AWS gateway can prove a client
// holds a grant's secret without the secret ever crossing the wire, and so
// that what the gateway authorizes and records is exactly what the client
// signed.
//
// Verify checks a request's signature, from an Authorization header or a
// presigned URL's query, against the secret that Lookup returns for its
// access key. What is verified, and why:
//
//   - The canonical request is rebuilt from the request as it arrived: the
//     method; the path exactly as sent on the request line (S3 neither
//     normalises nor re-encodes paths, so "a/../b", "a//b" and "a%2Fb" are
//     different keys and must be signed as sent); the query string decoded
//     and re-encoded with AWS's rules, sorted; and the headers the client
//     listed in SignedHeaders, values trimmed with inner runs of spaces
//     collapsed. Headers outside that list are not covered, which is why a
//     gateway must treat them as untrusted. "host" must always be signed,
//     so a signature made for one endpoint cannot be replayed at another.
//   - The credential scope (date/region/service/aws4_request) must name the
//     same day as the request's timestamp, and, when the Verifier is told
//     its Region and Service, those too.
//   - The timestamp must be within MaxSkew of the server's clock, which
//     bounds how long a captured request can be replayed. A presigned URL
//     instead carries X-Amz-Expires (1 s to 7 days) and is refused once
//     expired, or when dated in the future beyond MaxSkew.
//   - When the credential has a session token, the request must carry it,
//     signed, and it must match (constant time): Airlock's grant
//     credentials always come with one, so a leaked access key and secret
//     alone are not enough. A token on a credential that has none is
//     refused too, as AWS does.
//   - Signatures are compared with hmac.Equal.
//
// The payload is covered by the x-amz-content-sha256 header, which selects
// one of the PayloadModes. Verify does not read the body: Auth.Body wraps
// it in a reader that removes aws-chunked framing and verifies as it
// streams (digest at EOF, every chunk signature chained from the seed
// signature, the trailer signature, trailing and header checksums), with
// bounded memory. A verification failure surfaces as a Read error instead
// of io.EOF, so a proxy streaming the body upstream aborts that request
// rather than completing it with unverified bytes.
//
// Services other than S3 differ in two ways, which the Verifier and the
// Signer follow when the credential scope names another service (its
// name is checked: lowercase letters, digits and hyphens, at most 64):
// their SDKs sign the body's digest without sending x-amz-content-sha256,
// so Verifier.HashBody reads the body (bounded, and only once the access
// key is known) to compute it; and the canonical path is the path as sent
// escaped once more ("%3A" is signed as "%253A").
//
// Signer is the other side, for a proxy re-signing what it forwards: it
// signs an outgoing request in the header form with the same canonical
// request code (tested to produce the AWS SDK signer's signatures), and
// caches derived keys as the Verifier does.
//
// Every error is an *s3err.Error with S3's code. Messages help the person
// holding the CLI find their mistake, but never contain the secret, the
// session token, the signing key or the expected signature.
package sigv4
