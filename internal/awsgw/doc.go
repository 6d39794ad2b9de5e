// Package awsgw is Airlock's AWS gateway: an http.Handler that speaks the
// S3 REST API, and the APIs of the other SigV4 services, to agents holding
// grant credentials, and forwards each call to the target's real endpoint
// with the gateway's own credentials.
//
// For every request, in this order:
//
//  1. SigV4 is verified against the grant credential it names (header or
//     presigned form, every payload mode; internal/sigv4). The grant must be
//     live: a key whose grant has ended gets a precise answer only when the
//     caller proves it holds the secret, otherwise it reads as unknown.
//     Every x-amz-* header must be signed, as S3 requires.
//  2. The request is mapped to the IAM checks it needs (internal/s3iam),
//     identifiers validated, and every check must be covered by the grant's
//     scope. An upload id must name an upload this gateway created for
//     that key (uploads.go).
//  3. The call is recorded in the grant's session. A call that can change
//     state (anything but a body-less GET or HEAD whose every check is
//     s3:Get* or s3:List*: GetObject, HeadObject, HeadBucket, the List*
//     calls, the GetObject* reads) is recorded durably first: if the
//     record cannot be written the call is refused with 503 and nothing
//     is sent upstream. A read is forwarded at once while its record is
//     written (gateway.Session.RequestAsync): "durable before disclosure"
//     (DESIGN.md, "Fail closed").
//  4. The agent's authentication is stripped, the request is re-signed with
//     the target's own keys (or per-grant credentials from STS AssumeRole
//     with a session policy generated from the scope) and streamed to the
//     upstream. For a read, the upstream's answer (status, headers, body,
//     or the gateway's own error) is held, not a byte written to the
//     client, until the record is durable; if the record fails, the answer
//     is discarded unread and the call refused with 503, and no result is
//     recorded. Then the response is streamed back without buffering.
//  5. The result (status, bytes each way, duration) is recorded, batched
//     by the control plane, after the response.
//
// Session model: HTTP is stateless and SDKs spread calls over several
// connections, so a session is one grant's traffic through this gateway. It
// starts lazily at the grant's first call (denied calls included), and ends
// when the grant ends (Done closes, or its expiry passes) or when the
// gateway is closed. When the grant ends, transfers in flight are cut: the
// upstream request is cancelled and the client connection aborted at once,
// with a reset that drops what the kernel still holds (clientcut.go).
//
// Services other than S3 (service.go, svcforward.go, svcerr.go,
// svclocal.go) share the listener: the verified credential scope's
// service routes the call, never a header or the Host. The body is read
// whole (awsops.MaxBody; Lambda's 6 MB) to check the digest the SDKs sign
// without sending, mapped by internal/awsops to every IAM action and ARN
// it needs, checked against the scope, recorded (writes durably before
// they are sent; reads with Session.RequestAsync, their answer held until
// Pending.Wait says the record is durable), re-signed for that service at
// the target's endpoint for it (svcforward.go) and streamed back, cut at
// the grant's end like an S3 transfer. sts:GetCallerIdentity is answered
// locally with the grant's identity (svclocal.go). Errors take the
// service's own shape (svcerr.go). A call signed for a host that is not
// the gateway's own, or presigned, is refused.
//
// A client that stops mid-transfer is let go (idle.go): an upload idle
// for clientIdleTime is aborted and answered RequestTimeout; a download
// whose client acknowledges nothing between two looks that far apart is
// reset.
//
// A failed upload (bad signature or checksum, short or long body, client
// gone, grant ended) is aborted upstream with a connection reset, never a
// clean end of the body, so the upstream stores nothing (upabort.go).
package awsgw
