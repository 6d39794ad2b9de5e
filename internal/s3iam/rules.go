package s3iam

import "slices"

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
	resPrefix                // arn:aws:s3:::bucket/prefix*
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
	idQ            = []string{"id"}
	tokenQ         = []string{"continuation-token"}
)

func a(actions ...string) []string { return actions }

// rules lists every operation Airlock forwards. Anything else is refused.
var rules = []rule{
	{name: "ListBuckets", method: "GET", level: levelService, actions: a("s3:ListAllMyBuckets"), res: resAll,
		params: []string{"max-buckets", "continuation-token", "prefix", "bucket-region"}, request: "GET /",
		notes: "scope resources are ARNs, so the resource is arn:aws:s3:::* (grant it as that or as *)"},

	{name: "ListObjectsV2", method: "GET", level: levelBucket, actions: a("s3:ListBucket"), res: resPrefix, params: listV2Q,
		request: "GET /bucket?list-type=2", notes: "the resource is the listed prefix (\"\" if none) and a *, as it names every key under it: a grant on bucket/app/* lists only under app/, and an exact bucket/app/ lists nothing"},
	{name: "ListObjects", method: "GET", level: levelBucket, actions: a("s3:ListBucket"), res: resPrefix, params: listV1Q,
		request: "GET /bucket", notes: "as ListObjectsV2"},
	{name: "ListObjectVersions", method: "GET", level: levelBucket, sub: "versions", actions: a("s3:ListBucketVersions"), res: resPrefix, params: versionsQ,
		request: "GET /bucket?versions", notes: "prefix in the resource, as ListObjectsV2"},
	{name: "ListMultipartUploads", method: "GET", level: levelBucket, sub: "uploads", actions: a("s3:ListBucketMultipartUploads"), res: resPrefix, params: uploadsQ,
		request: "GET /bucket?uploads", notes: "prefix in the resource, as ListObjectsV2"},
	{name: "HeadBucket", method: "HEAD", level: levelBucket, actions: a("s3:ListBucket"), res: resBucket,
		request: "HEAD /bucket", notes: "allowed by s3:ListBucket on the bucket ARN or on any prefix in the bucket (a grant on bucket/app/* may confirm the bucket exists, which its listings already reveal)"},
	{name: "DeleteObjects", method: "POST", level: levelBucket, sub: "delete", actions: a("s3:DeleteObject"), res: resObject,
		request: "POST /bucket?delete", notes: "one check per <Key> of the body (s3:DeleteObjectVersion with <VersionId>); at most 1000 keys; the keys and version ids are recorded"},

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
		request: "PUT /bucket/key?tagging", notes: "the tags the body sets are recorded"},
	{name: "DeleteObjectTagging", method: "DELETE", level: levelObject, sub: "tagging", actions: a("s3:DeleteObjectTagging"), versioned: a("s3:DeleteObjectVersionTagging"), res: resObject, params: versionQ,
		request: "DELETE /bucket/key?tagging"},
	{name: "GetObjectAcl", method: "GET", level: levelObject, sub: "acl", actions: a("s3:GetObjectAcl"), versioned: a("s3:GetObjectVersionAcl"), res: resObject, params: versionQ,
		request: "GET /bucket/key?acl"},
	{name: "PutObjectAcl", method: "PUT", level: levelObject, sub: "acl", actions: a("s3:PutObjectAcl"), versioned: a("s3:PutObjectVersionAcl"), res: resObject, params: versionQ,
		request: "PUT /bucket/key?acl", notes: "the grantees, from x-amz-grant-* headers or the body, are recorded"},
	{name: "GetObjectAttributes", method: "GET", level: levelObject, sub: "attributes", actions: a("s3:GetObject", "s3:GetObjectAttributes"), versioned: a("s3:GetObjectVersion", "s3:GetObjectVersionAttributes"), res: resObject, params: versionQ,
		request: "GET /bucket/key?attributes", notes: "both actions, as AWS documents: the attributes include size and checksums of the object"},
	{name: "GetObjectRetention", method: "GET", level: levelObject, sub: "retention", actions: a("s3:GetObjectRetention"), versioned: a("s3:GetObjectRetention"), res: resObject, params: versionQ,
		request: "GET /bucket/key?retention"},
	{name: "GetObjectLegalHold", method: "GET", level: levelObject, sub: "legal-hold", actions: a("s3:GetObjectLegalHold"), versioned: a("s3:GetObjectLegalHold"), res: resObject, params: versionQ,
		request: "GET /bucket/key?legal-hold"},
	{name: "PutObjectRetention", method: "PUT", level: levelObject, sub: "retention", actions: a("s3:PutObjectRetention"), versioned: a("s3:PutObjectRetention"), res: resObject, params: versionQ,
		request: "PUT /bucket/key?retention", notes: "plus s3:BypassGovernanceRetention with x-amz-bypass-governance-retention: true; the mode and date the body sets are recorded"},
	{name: "PutObjectLegalHold", method: "PUT", level: levelObject, sub: "legal-hold", actions: a("s3:PutObjectLegalHold"), versioned: a("s3:PutObjectLegalHold"), res: resObject, params: versionQ,
		request: "PUT /bucket/key?legal-hold", notes: "the status the body sets is recorded"},
	{name: "RestoreObject", method: "POST", level: levelObject, sub: "restore", actions: a("s3:RestoreObject"), versioned: a("s3:RestoreObject"), res: resObject, params: versionQ,
		request: "POST /bucket/key?restore"},
	{name: "SelectObjectContent", method: "POST", level: levelObject, sub: "select", actions: a("s3:GetObject"), res: resObject, params: []string{"select-type"},
		request: "POST /bucket/key?select&select-type=2", notes: "reads the object, as AWS documents"},
	{name: "GetObjectTorrent", method: "GET", level: levelObject, sub: "torrent", actions: a("s3:GetObjectTorrent"), res: resObject,
		request: "GET /bucket/key?torrent"},

	{name: "CreateBucket", method: "PUT", level: levelBucket, actions: a("s3:CreateBucket"), res: resBucket,
		request: "PUT /bucket", notes: "plus s3:PutBucketAcl with x-amz-acl/x-amz-grant-*, s3:PutBucketObjectLockConfiguration + s3:PutBucketVersioning with x-amz-bucket-object-lock-enabled: true, s3:PutBucketOwnershipControls with x-amz-object-ownership, s3:TagResource with tags in the body"},
	{name: "DeleteBucket", method: "DELETE", level: levelBucket, actions: a("s3:DeleteBucket"), res: resBucket,
		request: "DELETE /bucket"},
}

// bucketConfigs are the bucket configuration operations: each is one
// named action on the bucket ARN, so a grant must name it. Several
// deletes need the Put action, as IAM has no Delete action for them
// (DeleteBucketCors needs s3:PutBucketCORS, for example).
var bucketConfigs = []struct {
	method, sub, name, action string
	params                    []string
}{
	{"GET", "location", "GetBucketLocation", "s3:GetBucketLocation", nil},
	{"GET", "versioning", "GetBucketVersioning", "s3:GetBucketVersioning", nil},
	{"GET", "acl", "GetBucketAcl", "s3:GetBucketAcl", nil},
	{"GET", "tagging", "GetBucketTagging", "s3:GetBucketTagging", nil},
	{"GET", "policy", "GetBucketPolicy", "s3:GetBucketPolicy", nil},
	{"GET", "policyStatus", "GetBucketPolicyStatus", "s3:GetBucketPolicyStatus", nil},
	{"GET", "cors", "GetBucketCors", "s3:GetBucketCORS", nil},
	{"GET", "lifecycle", "GetBucketLifecycleConfiguration", "s3:GetLifecycleConfiguration", nil},
	{"GET", "encryption", "GetBucketEncryption", "s3:GetEncryptionConfiguration", nil},
	{"GET", "object-lock", "GetObjectLockConfiguration", "s3:GetBucketObjectLockConfiguration", nil},
	{"GET", "ownershipControls", "GetBucketOwnershipControls", "s3:GetBucketOwnershipControls", nil},
	{"GET", "publicAccessBlock", "GetPublicAccessBlock", "s3:GetBucketPublicAccessBlock", nil},
	{"GET", "website", "GetBucketWebsite", "s3:GetBucketWebsite", nil},
	{"GET", "logging", "GetBucketLogging", "s3:GetBucketLogging", nil},
	{"GET", "notification", "GetBucketNotificationConfiguration", "s3:GetBucketNotification", nil},
	{"GET", "requestPayment", "GetBucketRequestPayment", "s3:GetBucketRequestPayment", nil},
	{"GET", "replication", "GetBucketReplication", "s3:GetReplicationConfiguration", nil},
	{"GET", "accelerate", "GetBucketAccelerateConfiguration", "s3:GetAccelerateConfiguration", nil},
	{"GET", "analytics", "GetBucketAnalyticsConfiguration", "s3:GetAnalyticsConfiguration", idQ},
	{"GET", "analytics", "ListBucketAnalyticsConfigurations", "s3:GetAnalyticsConfiguration", tokenQ},
	{"GET", "metrics", "GetBucketMetricsConfiguration", "s3:GetMetricsConfiguration", idQ},
	{"GET", "metrics", "ListBucketMetricsConfigurations", "s3:GetMetricsConfiguration", tokenQ},
	{"GET", "inventory", "GetBucketInventoryConfiguration", "s3:GetInventoryConfiguration", idQ},
	{"GET", "inventory", "ListBucketInventoryConfigurations", "s3:GetInventoryConfiguration", tokenQ},
	{"GET", "intelligent-tiering", "GetBucketIntelligentTieringConfiguration", "s3:GetIntelligentTieringConfiguration", idQ},
	{"GET", "intelligent-tiering", "ListBucketIntelligentTieringConfigurations", "s3:GetIntelligentTieringConfiguration", tokenQ},
	{"GET", "metadataTable", "GetBucketMetadataTableConfiguration", "s3:GetBucketMetadataTableConfiguration", nil},
	{"GET", "metadataConfiguration", "GetBucketMetadataConfiguration", "s3:GetBucketMetadataTableConfiguration", nil},

	{"PUT", "versioning", "PutBucketVersioning", "s3:PutBucketVersioning", nil},
	{"PUT", "acl", "PutBucketAcl", "s3:PutBucketAcl", nil},
	{"PUT", "tagging", "PutBucketTagging", "s3:PutBucketTagging", nil},
	{"PUT", "policy", "PutBucketPolicy", "s3:PutBucketPolicy", nil},
	{"PUT", "cors", "PutBucketCors", "s3:PutBucketCORS", nil},
	{"PUT", "lifecycle", "PutBucketLifecycleConfiguration", "s3:PutLifecycleConfiguration", nil},
	{"PUT", "encryption", "PutBucketEncryption", "s3:PutEncryptionConfiguration", nil},
	{"PUT", "object-lock", "PutObjectLockConfiguration", "s3:PutBucketObjectLockConfiguration", nil},
	{"PUT", "ownershipControls", "PutBucketOwnershipControls", "s3:PutBucketOwnershipControls", nil},
	{"PUT", "publicAccessBlock", "PutPublicAccessBlock", "s3:PutBucketPublicAccessBlock", nil},
	{"PUT", "website", "PutBucketWebsite", "s3:PutBucketWebsite", nil},
	{"PUT", "logging", "PutBucketLogging", "s3:PutBucketLogging", nil},
	{"PUT", "notification", "PutBucketNotificationConfiguration", "s3:PutBucketNotification", nil},
	{"PUT", "requestPayment", "PutBucketRequestPayment", "s3:PutBucketRequestPayment", nil},
	{"PUT", "replication", "PutBucketReplication", "s3:PutReplicationConfiguration", nil},
	{"PUT", "accelerate", "PutBucketAccelerateConfiguration", "s3:PutAccelerateConfiguration", nil},
	{"PUT", "analytics", "PutBucketAnalyticsConfiguration", "s3:PutAnalyticsConfiguration", idQ},
	{"PUT", "metrics", "PutBucketMetricsConfiguration", "s3:PutMetricsConfiguration", idQ},
	{"PUT", "inventory", "PutBucketInventoryConfiguration", "s3:PutInventoryConfiguration", idQ},
	{"PUT", "intelligent-tiering", "PutBucketIntelligentTieringConfiguration", "s3:PutIntelligentTieringConfiguration", idQ},

	{"DELETE", "tagging", "DeleteBucketTagging", "s3:PutBucketTagging", nil},
	{"DELETE", "policy", "DeleteBucketPolicy", "s3:DeleteBucketPolicy", nil},
	{"DELETE", "cors", "DeleteBucketCors", "s3:PutBucketCORS", nil},
	{"DELETE", "lifecycle", "DeleteBucketLifecycle", "s3:PutLifecycleConfiguration", nil},
	{"DELETE", "encryption", "DeleteBucketEncryption", "s3:PutEncryptionConfiguration", nil},
	{"DELETE", "ownershipControls", "DeleteBucketOwnershipControls", "s3:PutBucketOwnershipControls", nil},
	{"DELETE", "publicAccessBlock", "DeletePublicAccessBlock", "s3:PutBucketPublicAccessBlock", nil},
	{"DELETE", "website", "DeleteBucketWebsite", "s3:DeleteBucketWebsite", nil},
	{"DELETE", "replication", "DeleteBucketReplication", "s3:PutReplicationConfiguration", nil},
	{"DELETE", "analytics", "DeleteBucketAnalyticsConfiguration", "s3:PutAnalyticsConfiguration", idQ},
	{"DELETE", "metrics", "DeleteBucketMetricsConfiguration", "s3:PutMetricsConfiguration", idQ},
	{"DELETE", "inventory", "DeleteBucketInventoryConfiguration", "s3:PutInventoryConfiguration", idQ},
	{"DELETE", "intelligent-tiering", "DeleteBucketIntelligentTieringConfiguration", "s3:PutIntelligentTieringConfiguration", idQ},
	{"DELETE", "metadataTable", "DeleteBucketMetadataTableConfiguration", "s3:DeleteBucketMetadataTableConfiguration", nil},
	{"DELETE", "metadataConfiguration", "DeleteBucketMetadataConfiguration", "s3:DeleteBucketMetadataTableConfiguration", nil},
}

// configNotes document the bucket configuration operations whose checks
// need a word.
var configNotes = map[string]string{
	"PutBucketAcl":                                "the ACL in x-amz-acl/x-amz-grant-* headers or the body: the same action; the grantees are recorded either way",
	"PutBucketReplication":                        "plus iam:PassRole on each <Role> ARN of the body (the role S3 replicates as)",
	"PutBucketTagging":                            "the tags the body sets are recorded",
	"DeleteBucketTagging":                         "IAM has no delete action: the put action, as AWS documents",
	"DeleteBucketCors":                            "as DeleteBucketTagging",
	"DeleteBucketLifecycle":                       "as DeleteBucketTagging",
	"DeleteBucketEncryption":                      "as DeleteBucketTagging",
	"DeleteBucketOwnershipControls":               "as DeleteBucketTagging",
	"DeletePublicAccessBlock":                     "as DeleteBucketTagging",
	"DeleteBucketReplication":                     "as DeleteBucketTagging",
	"DeleteBucketAnalyticsConfiguration":          "as DeleteBucketTagging",
	"DeleteBucketMetricsConfiguration":            "as DeleteBucketTagging",
	"DeleteBucketInventoryConfiguration":          "as DeleteBucketTagging",
	"DeleteBucketIntelligentTieringConfiguration": "as DeleteBucketTagging",
	"GetBucketMetadataConfiguration":              "IAM names the V1 and V2 metadata configurations' actions alike",
	"DeleteBucketMetadataConfiguration":           "as GetBucketMetadataConfiguration",
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
	for _, bc := range bucketConfigs {
		req := bc.method + " /bucket?" + bc.sub
		if slices.Contains(bc.params, "id") {
			req += "&id=ID"
		}
		notes := configNotes[bc.name]
		if recordedConfigs[bc.name] {
			if notes != "" {
				notes += "; "
			}
			notes += "the " + map[bool]string{true: "policy", false: "configuration"}[bc.name == "PutBucketPolicy"] + " the body sets is recorded"
		}
		rules = append(rules, rule{name: bc.name, method: bc.method, level: levelBucket, sub: bc.sub, actions: a(bc.action), res: resBucket,
			params: bc.params, request: req, notes: notes})
	}
	idx := make(map[ruleKey][]*rule, len(rules))
	for i := range rules {
		r := &rules[i]
		k := ruleKey{r.method, r.level, r.sub}
		idx[k] = append(idx[k], r)
	}
	return idx
}()

// refused names, for the error message, the S3 operations Airlock knows
// and refuses whatever the grant says, and why.
func refused(method string, lv level, sub string) (name, why string) {
	const tables = "it needs S3 Tables permissions on resources Airlock does not scope"
	switch lv {
	case levelBucket:
		switch {
		case sub == "" && method == "POST":
			return "PostObject (browser form upload)", "its authorization is a signed policy document in the form, not a request signature Airlock can tie to a grant"
		case sub == "session":
			return "CreateSession", "it would hand out session credentials of the upstream (S3 Express directory buckets)"
		case sub == "metadataTable" && method == "POST":
			return "CreateBucketMetadataTableConfiguration", tables
		case sub == "metadataConfiguration" && method == "POST":
			return "CreateBucketMetadataConfiguration", tables
		case sub == "metadataInventoryTable" && method == "PUT":
			return "UpdateBucketMetadataInventoryTableConfiguration", tables
		case sub == "metadataJournalTable" && method == "PUT":
			return "UpdateBucketMetadataJournalTableConfiguration", tables
		case sub == "abac":
			return verbs[method] + "BucketAbac", "Airlock does not map attribute-based access control settings"
		}
	case levelObject:
		switch {
		case method == "PUT" && sub == "renameObject":
			return "RenameObject", "it exists only for S3 Express directory buckets, whose session authorization Airlock does not broker"
		case sub == "" && method == "POST":
			return "PostObject (browser form upload)", "its authorization is a signed policy document in the form, not a request signature Airlock can tie to a grant"
		}
	}
	return "", ""
}

var verbs = map[string]string{"GET": "Get", "PUT": "Put", "DELETE": "Delete", "POST": "Create"}

// s3Methods are the HTTP methods of the S3 API (OPTIONS is CORS
// preflight, which is unauthenticated).
var s3Methods = []string{"GET", "HEAD", "PUT", "POST", "DELETE"}
