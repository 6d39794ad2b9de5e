package s3iam

// level is what a request path addresses.
type level uint8

const (
	levelService level = iota // "/": no bucket
	levelBucket               // a bucket, no key
	levelObject               // an object
)

// resKind is how an operation's resource ARN is formed.
type resKind uint8

const (
	resObject resKind = iota // arn:aws:s3:::bucket/key
	resBucket                // arn:aws:s3:::bucket
	resPrefix                // arn:aws:s3:::bucket/prefix
	resAll                   // arn:aws:s3:::*
)

// rule is one mapped operation. The rules are the single source of the
// mapping: Map selects by (method, level, sub) and Table renders them.
type rule struct {
	name   string
	method string
	level  level
	// sub is the subresource query parameter that selects the operation
	// ("" for none).
	sub string
	// actions are required; versioned replace them when the request has a
	// versionId (nil means versionId is not accepted).
	actions, versioned []string
	res                resKind
	// params are the other query parameters the operation accepts.
	params []string
	// request and notes document the rule in Table.
	request, notes string
}

var (
	responseParams = []string{"response-cache-control", "response-content-disposition", "response-content-encoding", "response-content-language", "response-content-type", "response-expires"}
	getObjectQ     = append([]string{"versionId", "partNumber"}, responseParams...)
	listV1Q        = []string{"delimiter", "encoding-type", "marker", "max-keys", "prefix"}
	listV2Q        = []string{"list-type", "delimiter", "encoding-type", "max-keys", "prefix", "continuation-token", "fetch-owner", "start-after"}
	versionsQ      = []string{"delimiter", "encoding-type", "key-marker", "max-keys", "prefix", "version-id-marker"}
	uploadsQ       = []string{"delimiter", "encoding-type", "key-marker", "max-uploads", "prefix", "upload-id-marker"}
	versionQ       = []string{"versionId"}
)

func a(actions ...string) []string { return actions }

// rules lists every operation Airlock forwards. Anything else is refused.
var rules = []rule{
	{name: "ListBuckets", method: "GET", level: levelService, actions: a("s3:ListAllMyBuckets"), res: resAll,
		params: []string{"max-buckets", "continuation-token", "prefix", "bucket-region"}, request: "GET /",
		notes: "scope resources are ARNs, so the resource is arn:aws:s3:::* (grant it as that or as *)"},

	{name: "ListObjectsV2", method: "GET", level: levelBucket, actions: a("s3:ListBucket"), res: resPrefix, params: listV2Q,
		request: "GET /bucket?list-type=2", notes: "the resource carries the listed prefix (\"\" if none), so a grant on bucket/app/* lists only under app/"},
	{name: "ListObjects", method: "GET", level: levelBucket, actions: a("s3:ListBucket"), res: resPrefix, params: listV1Q,
		request: "GET /bucket", notes: "as ListObjectsV2"},
	{name: "ListObjectVersions", method: "GET", level: levelBucket, sub: "versions", actions: a("s3:ListBucketVersions"), res: resPrefix, params: versionsQ,
		request: "GET /bucket?versions", notes: "prefix in the resource, as ListObjectsV2"},
	{name: "ListMultipartUploads", method: "GET", level: levelBucket, sub: "uploads", actions: a("s3:ListBucketMultipartUploads"), res: resPrefix, params: uploadsQ,
		request: "GET /bucket?uploads", notes: "prefix in the resource, as ListObjectsV2"},
	{name: "HeadBucket", method: "HEAD", level: levelBucket, actions: a("s3:ListBucket"), res: resBucket,
		request: "HEAD /bucket", notes: "the bare bucket ARN: only a grant covering arn:aws:s3:::bucket itself allows it (a bucket/prefix* grant does not)"},
	{name: "DeleteObjects", method: "POST", level: levelBucket, sub: "delete", actions: a("s3:DeleteObject"), res: resObject,
		request: "POST /bucket?delete", notes: "one check per <Key> of the body (s3:DeleteObjectVersion with <VersionId>); at most 1000 keys"},

	{name: "GetObject", method: "GET", level: levelObject, actions: a("s3:GetObject"), versioned: a("s3:GetObjectVersion"), res: resObject, params: getObjectQ,
		request: "GET /bucket/key"},
	{name: "HeadObject", method: "HEAD", level: levelObject, actions: a("s3:GetObject"), versioned: a("s3:GetObjectVersion"), res: resObject, params: getObjectQ,
		request: "HEAD /bucket/key"},
	{name: "PutObject", method: "PUT", level: levelObject, actions: a("s3:PutObject"), res: resObject,
		request: "PUT /bucket/key", notes: "plus s3:PutObjectAcl with x-amz-acl/x-amz-grant-*, s3:PutObjectTagging with x-amz-tagging, s3:PutObjectRetention / s3:PutObjectLegalHold with object-lock headers"},
	{name: "CopyObject", method: "PUT", level: levelObject, actions: a("s3:PutObject"), res: resObject,
		request: "PUT /bucket/key + x-amz-copy-source", notes: "plus s3:GetObject (s3:GetObjectVersion with ?versionId) on the source object; header checks as PutObject"},
	{name: "DeleteObject", method: "DELETE", level: levelObject, actions: a("s3:DeleteObject"), versioned: a("s3:DeleteObjectVersion"), res: resObject, params: versionQ,
		request: "DELETE /bucket/key", notes: "plus s3:BypassGovernanceRetention with x-amz-bypass-governance-retention (also per key in DeleteObjects)"},
	{name: "CreateMultipartUpload", method: "POST", level: levelObject, sub: "uploads", actions: a("s3:PutObject"), res: resObject,
		request: "POST /bucket/key?uploads", notes: "header checks as PutObject"},
	{name: "UploadPart", method: "PUT", level: levelObject, sub: "uploadId", actions: a("s3:PutObject"), res: resObject, params: []string{"partNumber"},
		request: "PUT /bucket/key?partNumber=N&uploadId=U"},
	{name: "UploadPartCopy", method: "PUT", level: levelObject, sub: "uploadId", actions: a("s3:PutObject"), res: resObject, params: []string{"partNumber"},
		request: "PUT /bucket/key?partNumber=N&uploadId=U + x-amz-copy-source", notes: "plus s3:GetObject (s3:GetObjectVersion) on the source object"},
	{name: "CompleteMultipartUpload", method: "POST", level: levelObject, sub: "uploadId", actions: a("s3:PutObject"), res: resObject,
		request: "POST /bucket/key?uploadId=U"},
	{name: "AbortMultipartUpload", method: "DELETE", level: levelObject, sub: "uploadId", actions: a("s3:AbortMultipartUpload"), res: resObject,
		request: "DELETE /bucket/key?uploadId=U"},
	{name: "ListParts", method: "GET", level: levelObject, sub: "uploadId", actions: a("s3:ListMultipartUploadParts"), res: resObject, params: []string{"max-parts", "part-number-marker"},
		request: "GET /bucket/key?uploadId=U"},
	{name: "GetObjectTagging", method: "GET", level: levelObject, sub: "tagging", actions: a("s3:GetObjectTagging"), versioned: a("s3:GetObjectVersionTagging"), res: resObject, params: versionQ,
		request: "GET /bucket/key?tagging"},
	{name: "PutObjectTagging", method: "PUT", level: levelObject, sub: "tagging", actions: a("s3:PutObjectTagging"), versioned: a("s3:PutObjectVersionTagging"), res: resObject, params: versionQ,
		request: "PUT /bucket/key?tagging"},
	{name: "DeleteObjectTagging", method: "DELETE", level: levelObject, sub: "tagging", actions: a("s3:DeleteObjectTagging"), versioned: a("s3:DeleteObjectVersionTagging"), res: resObject, params: versionQ,
		request: "DELETE /bucket/key?tagging"},
	{name: "GetObjectAcl", method: "GET", level: levelObject, sub: "acl", actions: a("s3:GetObjectAcl"), versioned: a("s3:GetObjectVersionAcl"), res: resObject, params: versionQ,
		request: "GET /bucket/key?acl"},
	{name: "PutObjectAcl", method: "PUT", level: levelObject, sub: "acl", actions: a("s3:PutObjectAcl"), versioned: a("s3:PutObjectVersionAcl"), res: resObject, params: versionQ,
		request: "PUT /bucket/key?acl"},
	{name: "GetObjectAttributes", method: "GET", level: levelObject, sub: "attributes", actions: a("s3:GetObject", "s3:GetObjectAttributes"), versioned: a("s3:GetObjectVersion", "s3:GetObjectVersionAttributes"), res: resObject, params: versionQ,
		request: "GET /bucket/key?attributes", notes: "both actions, as AWS documents: the attributes include size and checksums of the object"},
	{name: "GetObjectRetention", method: "GET", level: levelObject, sub: "retention", actions: a("s3:GetObjectRetention"), versioned: a("s3:GetObjectRetention"), res: resObject, params: versionQ,
		request: "GET /bucket/key?retention"},
	{name: "GetObjectLegalHold", method: "GET", level: levelObject, sub: "legal-hold", actions: a("s3:GetObjectLegalHold"), versioned: a("s3:GetObjectLegalHold"), res: resObject, params: versionQ,
		request: "GET /bucket/key?legal-hold"},
}

// bucketReads are the bucket configuration reads Airlock forwards: each
// is one named action on the bucket ARN, so a grant must name it.
var bucketReads = []struct{ sub, name, action string }{
	{"location", "GetBucketLocation", "s3:GetBucketLocation"},
	{"versioning", "GetBucketVersioning", "s3:GetBucketVersioning"},
	{"acl", "GetBucketAcl", "s3:GetBucketAcl"},
	{"tagging", "GetBucketTagging", "s3:GetBucketTagging"},
	{"policy", "GetBucketPolicy", "s3:GetBucketPolicy"},
	{"policyStatus", "GetBucketPolicyStatus", "s3:GetBucketPolicyStatus"},
	{"cors", "GetBucketCors", "s3:GetBucketCORS"},
	{"lifecycle", "GetBucketLifecycleConfiguration", "s3:GetLifecycleConfiguration"},
	{"encryption", "GetBucketEncryption", "s3:GetEncryptionConfiguration"},
	{"object-lock", "GetObjectLockConfiguration", "s3:GetBucketObjectLockConfiguration"},
	{"ownershipControls", "GetBucketOwnershipControls", "s3:GetBucketOwnershipControls"},
	{"publicAccessBlock", "GetPublicAccessBlock", "s3:GetBucketPublicAccessBlock"},
	{"website", "GetBucketWebsite", "s3:GetBucketWebsite"},
	{"logging", "GetBucketLogging", "s3:GetBucketLogging"},
	{"notification", "GetBucketNotificationConfiguration", "s3:GetBucketNotification"},
	{"requestPayment", "GetBucketRequestPayment", "s3:GetBucketRequestPayment"},
	{"replication", "GetBucketReplication", "s3:GetReplicationConfiguration"},
	{"accelerate", "GetBucketAccelerateConfiguration", "s3:GetAccelerateConfiguration"},
}

// ruleKey selects a rule.
type ruleKey struct {
	method string
	level  level
	sub    string
}

// ruleIndex maps (method, level, sub) to the rules sharing it; the
// classifier picks among them by header or parameter (PutObject or
// CopyObject, ListObjects or ListObjectsV2, UploadPart or UploadPartCopy).
var ruleIndex = func() map[ruleKey][]*rule {
	for _, br := range bucketReads {
		rules = append(rules, rule{name: br.name, method: "GET", level: levelBucket, sub: br.sub, actions: a(br.action), res: resBucket,
			request: "GET /bucket?" + br.sub})
	}
	idx := make(map[ruleKey][]*rule, len(rules))
	for i := range rules {
		r := &rules[i]
		k := ruleKey{r.method, r.level, r.sub}
		idx[k] = append(idx[k], r)
	}
	return idx
}()

// refusedNames names, for the error message, S3 operations Airlock knows
// and refuses: bucket creation, deletion and configuration writes, object
// lock writes, restore, select, rename, browser POST uploads.
func refusedName(method string, lv level, sub string) string {
	verb := verbs[method]
	switch lv {
	case levelService:
		if sub == "session" {
			return "CreateSession"
		}
	case levelBucket:
		switch {
		case sub == "" && method == "PUT":
			return "CreateBucket"
		case sub == "" && method == "DELETE":
			return "DeleteBucket"
		case sub == "" && method == "POST":
			return "PostObject (browser form upload)"
		case sub != "" && verb != "":
			if n, ok := bucketConfigNames[sub]; ok {
				return verb + n
			}
		}
	case levelObject:
		switch {
		case method == "POST" && sub == "restore":
			return "RestoreObject"
		case method == "POST" && sub == "select":
			return "SelectObjectContent"
		case method == "PUT" && sub == "retention":
			return "PutObjectRetention"
		case method == "PUT" && sub == "legal-hold":
			return "PutObjectLegalHold"
		case method == "PUT" && sub == "renameObject":
			return "RenameObject"
		case method == "GET" && sub == "torrent":
			return "GetObjectTorrent"
		}
	}
	return ""
}

var verbs = map[string]string{"GET": "Get", "PUT": "Put", "DELETE": "Delete"}

var bucketConfigNames = map[string]string{
	"accelerate": "BucketAccelerateConfiguration", "acl": "BucketAcl",
	"analytics": "BucketAnalyticsConfiguration", "cors": "BucketCors",
	"encryption": "BucketEncryption", "intelligent-tiering": "BucketIntelligentTieringConfiguration",
	"inventory": "BucketInventoryConfiguration", "lifecycle": "BucketLifecycleConfiguration",
	"logging": "BucketLogging", "metadataTable": "BucketMetadataTableConfiguration",
	"metadataConfiguration": "BucketMetadataConfiguration", "metrics": "BucketMetricsConfiguration",
	"notification": "BucketNotificationConfiguration", "object-lock": "ObjectLockConfiguration",
	"ownershipControls": "BucketOwnershipControls", "policy": "BucketPolicy",
	"policyStatus": "BucketPolicyStatus", "publicAccessBlock": "PublicAccessBlock",
	"replication": "BucketReplication", "requestPayment": "BucketRequestPayment",
	"tagging": "BucketTagging", "versioning": "BucketVersioning", "website": "BucketWebsite",
	"location": "BucketLocation", "versions": "ObjectVersions", "uploads": "MultipartUploads",
	"abac": "BucketAbac",
}
