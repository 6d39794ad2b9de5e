package awsops

import (
	"net/url"
	"strings"
)

var queueChars = charset("_-.")

// queueName checks an SQS queue name: letters, digits, - and _, up to 80
// characters, with an optional .fifo suffix.
func (m *mapper) queueName(what, n string) error {
	if err := m.name(what, n, 1, 80, queueChars); err != nil {
		return err
	}
	if strings.Contains(strings.TrimSuffix(n, ".fifo"), ".") {
		return m.failure(codeInvalid, "%s %q: a queue name has no '.' except a .fifo suffix", what, esc(n))
	}
	return nil
}

// queueFromURL returns the queue name of a QueueUrl,
// SCHEME://HOST/ACCOUNT/NAME. The account must be the target's; an AWS
// host that names a region must name the target's. Another host (the
// gateway's own, a test endpoint) is accepted: SQS acts on the queue the
// path names, on the endpoint the call was sent to.
func (m *mapper) queueFromURL(raw string) (string, error) {
	if err := m.name("QueueUrl", raw, 1, 2048, nil); err != nil {
		return "", err
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", m.failure(codeInvalid, "QueueUrl %q is not an http(s) URL of a queue", esc(raw))
	}
	seg := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
	if len(seg) != 2 {
		return "", m.failure(codeInvalid, "QueueUrl %q does not end in /ACCOUNT/QUEUE", esc(raw))
	}
	if seg[0] != m.r.Account {
		return "", m.failure(codeDenied, "QueueUrl %q names account %q; the grant's target is account %s", esc(raw), esc(seg[0]), m.r.Account)
	}
	if r := sqsHostRegion(strings.ToLower(u.Hostname())); r != "" && r != m.r.Region {
		return "", m.failure(codeDenied, "QueueUrl %q is in region %q; the grant's target is region %s", esc(raw), esc(r), m.r.Region)
	}
	if err := m.queueName("queue name", seg[1]); err != nil {
		return "", err
	}
	return seg[1], nil
}

// sqsHostRegion is the region an AWS SQS host names, "" for other hosts.
func sqsHostRegion(h string) string {
	for _, suf := range []string{".amazonaws.com", ".amazonaws.com.cn", ".api.aws"} {
		if base, ok := strings.CutSuffix(h, suf); ok {
			switch {
			case base == "queue" || base == "sqs":
				return "us-east-1"
			case strings.HasPrefix(base, "sqs."):
				return strings.TrimPrefix(base, "sqs.")
			case strings.HasSuffix(base, ".queue"):
				return strings.TrimSuffix(base, ".queue")
			}
			return "" // VPC endpoints and other shapes: the path decides
		}
	}
	return ""
}

// queue reads the queue a call acts on: QueueUrl, or the request path
// /ACCOUNT/NAME (the older Query form; a JSON call has it too if its
// client puts it there), never two different ones.
func (m *mapper) queue(in input, op *Op) (string, error) {
	raw, err := in.str("QueueUrl")
	if err != nil {
		return "", err
	}
	var name string
	if raw != "" {
		if name, err = m.queueFromURL(raw); err != nil {
			return "", err
		}
	}
	if m.r.Path != "/" && m.r.Path != "" {
		p, err := m.queueFromURL("https://path" + m.r.Path)
		if err != nil {
			return "", err
		}
		if name != "" && p != name {
			return "", m.failure(codeInvalid, "the path names queue %q and QueueUrl %q", esc(p), esc(name))
		}
		name = p
	}
	if name == "" {
		return "", m.failure(codeInvalid, "QueueUrl is missing")
	}
	op.param("queue", name)
	return m.arn("sqs", name), nil
}

func queueCheck(action string) func(m *mapper, in input, op *Op) error {
	return func(m *mapper, in input, op *Op) error {
		res, err := m.queue(in, op)
		if err != nil {
			return err
		}
		op.check(action, res)
		return nil
	}
}

func getQueueURL(m *mapper, in input, op *Op) error {
	n, err := in.str("QueueName")
	if err != nil {
		return err
	}
	if err := m.queueName("QueueName", n); err != nil {
		return err
	}
	owner, err := in.str("QueueOwnerAWSAccountId")
	if err != nil {
		return err
	}
	if owner != "" && owner != m.r.Account {
		return m.failure(codeDenied, "QueueOwnerAWSAccountId %q is not the grant's target account %s", esc(owner), m.r.Account)
	}
	op.param("queue", n)
	op.check("sqs:GetQueueUrl", m.arn("sqs", n))
	return nil
}

func listQueues(m *mapper, in input, op *Op) error {
	p, err := in.str("QueueNamePrefix")
	if err != nil {
		return err
	}
	op.param("queueNamePrefix", p)
	op.check("sqs:ListQueues", "*")
	return nil
}

// topic returns the ARN a TopicArn or TargetArn names, in the target's
// account and region.
func (m *mapper) topic(what, s string) (string, error) {
	if err := m.name(what, s, 1, 1024, nil); err != nil {
		return "", err
	}
	a, err := m.parseARN(what, s, "sns", true)
	if err != nil {
		return "", err
	}
	if err := m.name(what+" resource", a.resource, 1, 512, charset("_-./")); err != nil {
		return "", err
	}
	return m.arn("sns", a.resource), nil
}

// publish checks sns:Publish on the topic or endpoint ARN; a message to a
// phone number has no ARN, and IAM authorizes it on "*".
func publish(m *mapper, in input, op *Op) error {
	var set []string
	res := ""
	for _, k := range []string{"TopicArn", "TargetArn", "PhoneNumber"} {
		v, err := in.str(k)
		if err != nil {
			return err
		}
		if v == "" {
			continue
		}
		set = append(set, k)
		if k == "PhoneNumber" {
			if err := m.name(k, v, 1, 32, charset("+")); err != nil {
				return err
			}
			res = "*"
			continue
		}
		if res, err = m.topic(k, v); err != nil {
			return err
		}
		op.param("topic", v)
	}
	if len(set) != 1 {
		return m.failure(codeInvalid, "give exactly one of TopicArn, TargetArn or PhoneNumber")
	}
	op.check("sns:Publish", res)
	return nil
}

func publishBatch(m *mapper, in input, op *Op) error {
	v, err := in.str("TopicArn")
	if err != nil {
		return err
	}
	res, err := m.topic("TopicArn", v)
	if err != nil {
		return err
	}
	op.param("topic", v)
	op.check("sns:Publish", res)
	return nil
}

func init() {
	const q = "`arn:aws:sqs:R:A:NAME` from QueueUrl (account must be the target's)"
	both := pJSON | pQuery
	register("sqs", map[string]*spec{
		"SendMessage":                  {protos: both, fn: queueCheck("sqs:SendMessage"), actions: "sqs:SendMessage", resources: q, params: "queue"},
		"SendMessageBatch":             {protos: both, fn: queueCheck("sqs:SendMessage"), actions: "sqs:SendMessage", resources: q, params: "queue"},
		"ReceiveMessage":               {protos: both, fn: queueCheck("sqs:ReceiveMessage"), actions: "sqs:ReceiveMessage", resources: q, params: "queue"},
		"DeleteMessage":                {protos: both, fn: queueCheck("sqs:DeleteMessage"), actions: "sqs:DeleteMessage", resources: q, params: "queue"},
		"DeleteMessageBatch":           {protos: both, fn: queueCheck("sqs:DeleteMessage"), actions: "sqs:DeleteMessage", resources: q, params: "queue"},
		"ChangeMessageVisibility":      {protos: both, fn: queueCheck("sqs:ChangeMessageVisibility"), actions: "sqs:ChangeMessageVisibility", resources: q, params: "queue"},
		"ChangeMessageVisibilityBatch": {protos: both, fn: queueCheck("sqs:ChangeMessageVisibility"), actions: "sqs:ChangeMessageVisibility", resources: q, params: "queue"},
		"GetQueueAttributes":           {protos: both, readOnly: true, fn: queueCheck("sqs:GetQueueAttributes"), actions: "sqs:GetQueueAttributes", resources: q, params: "queue"},
		"GetQueueUrl": {protos: both, readOnly: true, fn: getQueueURL, actions: "sqs:GetQueueUrl",
			resources: "`arn:aws:sqs:R:A:NAME` from QueueName (QueueOwnerAWSAccountId, if given, must be the target's)", params: "queue"},
		"ListQueues": {protos: both, readOnly: true, fn: listQueues, actions: "sqs:ListQueues", resources: "`*`", params: "queueNamePrefix"},
	})
	register("sns", map[string]*spec{
		"Publish": {protos: pQuery, fn: publish, actions: "sns:Publish",
			resources: "TopicArn or TargetArn (target's account and region); `*` for PhoneNumber", params: "topic"},
		"PublishBatch": {protos: pQuery, fn: publishBatch, actions: "sns:Publish", resources: "TopicArn", params: "topic"},
		"ListTopics":   {protos: pQuery, readOnly: true, fn: everything("sns:ListTopics"), actions: "sns:ListTopics", resources: "`*`"},
	})
}
