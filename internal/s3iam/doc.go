// Package s3iam maps an S3 HTTP request to the S3 operation it performs and
// to the IAM actions and resource ARNs that operation needs, the way IAM
// authorizes S3, so the AWS gateway forwards a call only if the grant's
// scope allows every Check (scope.Scope.Allows(action, resource)).
//
// Every S3 operation is mapped to the IAM actions and resources the IAM
// Service Authorization Reference gives it, so the grant's scope alone
// decides. Refused whatever the grant says (fail closed), each with a
// message that names the operation and says why: requests that are not
// S3 (another HTTP method, such as the PATCH of versitygw's admin API),
// browser POST uploads (a signed form policy, not a request signature),
// CreateSession and RenameObject (S3 Express session authorization), the
// S3 Metadata table creations (S3 Tables permissions), unknown
// subresources, unknown query parameters, and any query parameter an
// operation does not take (including x-amz-* headers hoisted into a
// presigned URL's query, which S3 would honour as headers).
//
// # Mapping
//
//	operation               request                          action(s)                                       resource
//	ListBuckets             GET /                            s3:ListAllMyBuckets                             arn:aws:s3:::*
//	ListObjectsV2           GET /b?list-type=2               s3:ListBucket                                   arn:aws:s3:::b/PREFIX*
//	ListObjects             GET /b                           s3:ListBucket                                   arn:aws:s3:::b/PREFIX*
//	ListObjectVersions      GET /b?versions                  s3:ListBucketVersions                           arn:aws:s3:::b/PREFIX*
//	ListMultipartUploads    GET /b?uploads                   s3:ListBucketMultipartUploads                   arn:aws:s3:::b/PREFIX*
//	HeadBucket              HEAD /b                          s3:ListBucket (on b or anything in it)          arn:aws:s3:::b
//	CreateBucket            PUT /b                           s3:CreateBucket (+ header and body checks)      arn:aws:s3:::b
//	DeleteBucket            DELETE /b                        s3:DeleteBucket                                 arn:aws:s3:::b
//	bucket configuration    GET|PUT|DELETE /b?SUB            one action each, below                          arn:aws:s3:::b
//	DeleteObjects           POST /b?delete                   s3:DeleteObject per <Key> (…Version w/ id)      arn:aws:s3:::b/KEY each
//	GetObject, HeadObject   GET|HEAD /b/k                    s3:GetObject (s3:GetObjectVersion w/ versionId) arn:aws:s3:::b/k
//	PutObject               PUT /b/k                         s3:PutObject (+ header checks)                  arn:aws:s3:::b/k
//	CopyObject              PUT /b/k + x-amz-copy-source     s3:PutObject + s3:GetObject[Version] on source  b/k and the source
//	DeleteObject            DELETE /b/k                      s3:DeleteObject (s3:DeleteObjectVersion)        arn:aws:s3:::b/k
//	CreateMultipartUpload   POST /b/k?uploads                s3:PutObject (+ header checks)                  arn:aws:s3:::b/k
//	UploadPart              PUT /b/k?partNumber&uploadId     s3:PutObject                                    arn:aws:s3:::b/k
//	UploadPartCopy          … + x-amz-copy-source            s3:PutObject + s3:GetObject[Version] on source  b/k and the source
//	CompleteMultipartUpload POST /b/k?uploadId               s3:PutObject                                    arn:aws:s3:::b/k
//	AbortMultipartUpload    DELETE /b/k?uploadId             s3:AbortMultipartUpload                         arn:aws:s3:::b/k
//	ListParts               GET /b/k?uploadId                s3:ListMultipartUploadParts                     arn:aws:s3:::b/k
//	Get/Put/DeleteObjectTagging ?tagging                     s3:GetObjectTagging… (…VersionTagging)          arn:aws:s3:::b/k
//	GetObjectAcl/PutObjectAcl   ?acl                         s3:GetObjectAcl… (…VersionAcl)                  arn:aws:s3:::b/k
//	GetObjectAttributes     GET /b/k?attributes              s3:GetObject + s3:GetObjectAttributes           arn:aws:s3:::b/k
//	                                                         (…Version + …VersionAttributes w/ versionId)
//	Get/PutObjectRetention  ?retention                       s3:Get/PutObjectRetention (+ Bypass…)           arn:aws:s3:::b/k
//	Get/PutObjectLegalHold  ?legal-hold                      s3:Get/PutObjectLegalHold                       arn:aws:s3:::b/k
//	RestoreObject           POST /b/k?restore                s3:RestoreObject                                arn:aws:s3:::b/k
//	SelectObjectContent     POST /b/k?select                 s3:GetObject                                    arn:aws:s3:::b/k
//	GetObjectTorrent        GET /b/k?torrent                 s3:GetObjectTorrent                             arn:aws:s3:::b/k
//
// The bucket configuration operations are listed in bucketConfigs: the
// Get, Put and (where S3 has one) Delete of BucketVersioning, BucketAcl,
// BucketTagging, BucketPolicy, BucketPolicyStatus, BucketCors,
// BucketLifecycleConfiguration (DeleteBucketLifecycle), BucketEncryption,
// ObjectLockConfiguration, BucketOwnershipControls, PublicAccessBlock,
// BucketWebsite, BucketLogging, BucketNotificationConfiguration,
// BucketRequestPayment, BucketReplication,
// BucketAccelerateConfiguration, BucketLocation,
// BucketMetadataTableConfiguration and BucketMetadataConfiguration, and
// the Get, List, Put and Delete of BucketAnalyticsConfiguration,
// BucketMetricsConfiguration, BucketInventoryConfiguration and
// BucketIntelligentTieringConfiguration
// (ListBucketAnalyticsConfigurations, ListBucketMetricsConfigurations,
// ListBucketInventoryConfigurations,
// ListBucketIntelligentTieringConfigurations). Each needs its own action,
// so a grant must name it; where IAM has no Delete action, the delete
// needs the Put action (DeleteBucketCors: s3:PutBucketCORS), as AWS
// documents.
//
// Table and Markdown give the same mapping as data, for the README.
//
// Decisions:
//   - Listings put the listed prefix in the resource as a pattern
//     ("arn:aws:s3:::b/" + prefix + "*", prefix "" when absent): a grant
//     on b/app/* lists with prefix app/ or app/x, not app or the whole
//     bucket. Keys a listing returns all start with its prefix, so
//     delimiter, marker and start-after cannot reach outside it; and since
//     it names every key under the prefix, only a statement whose pattern
//     covers all of them allows it: an exact "arn:aws:s3:::b/app/" does
//     not (it would list app/secret/ past a policy's forbid on it).
//   - HeadBucket needs s3:ListBucket on the bucket ARN, as in AWS, or on
//     any resource inside the bucket (Check.InBucket): a grant that lists
//     b/app/ learns that b exists from any listing, so HeadBucket reveals
//     nothing more, and clients such as rclone ask it before uploading
//     (and try CreateBucket when it is refused).
//   - CreateBucket needs more with the headers that configure more:
//     x-amz-acl/x-amz-grant-* (s3:PutBucketAcl),
//     x-amz-bucket-object-lock-enabled (s3:PutBucketObjectLockConfiguration
//     and s3:PutBucketVersioning), x-amz-object-ownership
//     (s3:PutBucketOwnershipControls); with a body it is a NeedsBody op,
//     and tags in the body need s3:TagResource.
//   - PutBucketReplication is a NeedsBody op: the <Role> of the body
//     needs iam:PassRole on that role's ARN, as IAM requires.
//   - A bucket policy or configuration write with a body (PutBucketPolicy,
//     PutBucketVersioning, PutObjectLockConfiguration, lifecycle, CORS, …:
//     recordedConfigs) is a NeedsBody op: its checks are the action's
//     alone, and what it sets is recorded ("policy", "configuration").
//   - ListBuckets checks arn:aws:s3:::*, because scope resources are ARNs.
//   - GetObjectAttributes needs both actions, as AWS documents.
//   - Headers that make IAM ask for more are checked: x-amz-acl and
//     x-amz-grant-* (s3:PutObjectAcl), x-amz-tagging (s3:PutObjectTagging),
//     x-amz-object-lock-* (s3:PutObjectRetention, s3:PutObjectLegalHold),
//     x-amz-bypass-governance-retention (s3:BypassGovernanceRetention). A
//     CopyObject that copies the source's tags is not asked for
//     s3:GetObjectTagging (IAM decides that from the source's tags, which
//     Airlock cannot see). KMS permissions are out of scope.
//   - x-amz-mfa ("SERIAL CODE") asks for nothing more (S3 checks the
//     code); its device is recorded as mfa_serial, the one-time code never.
//   - The SDKs' x-id query label must agree with the operation.
//
// # Encodings
//
// The key is the escaped path after the bucket, percent-decoded exactly
// once, as S3 does; the resource is byte for byte that key (no Unicode,
// case or slash normalisation), and Op.UpstreamPath re-encodes it so the
// upstream decodes the same bytes. Refused, so that no encoding trick
// escapes a granted prefix on any S3-compatible upstream:
//   - a literal '+' in the path, the copy source or the query: AWS S3
//     reads it as a space, Go-based servers as a plus; SDKs send %2B;
//   - malformed escapes, ';' in the query, a query parameter given twice;
//   - keys (and prefixes, and copy-source keys, and DeleteObjects keys)
//     that are not valid UTF-8 (this covers overlong forms like %C0%AE),
//     contain C0/C1 control characters, DEL or NUL, a backslash, a "." or
//     ".." segment, or an empty segment (leading '/', "//"); a trailing
//     '/' is allowed;
//   - keys over 1024 bytes; bucket names outside today's S3 rules,
//     including escaped ones;
//   - a response-* override with a control character other than a tab, or
//     DEL: the upstream echoes it as a response header;
//   - a copy-source key with an encoded '?': versitygw decodes
//     x-amz-copy-source before it splits off "?versionId=", so it would
//     copy a version no check named.
//
// Identifiers (upload and version ids, part numbers, markers,
// continuation tokens, the copy source's and DeleteObjects' version ids)
// are validated as opaque tokens by CheckQueryID and CheckOpaqueID
// (ids.go): servers on a file system join some of them into paths.
//
// %2F decodes to '/', as in S3 (the key is the same either way). %252F
// decodes once to the literal three characters "%2F", which S3 also
// stores literally, so it cannot climb out of a prefix.
//
// Virtual-hosted requests are recognised by Mapper.Hosts only; any other
// Host (evil.com, b.s3.test.evil.com) is path-style. The bucket in the Host
// wins over the path, as in S3, so a caller must rebuild the upstream
// request from the Op, never forward the raw path or Host.
package s3iam
