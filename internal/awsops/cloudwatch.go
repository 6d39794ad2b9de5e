package awsops

import (
	"strconv"
	"strings"
)

// metricQueries records how many queries a GetMetricData call makes;
// IAM does not scope metrics, and the metric names sit deeper in the body
// than the decoders keep. A query's AccountId, which in a monitoring
// account of CloudWatch cross-account observability reads the metrics of
// a linked source account, must be the target's.
func metricQueries(m *mapper, in input, op *Op) error {
	n := 0
	switch in := in.(type) {
	case formInput:
		for k, v := range in.v {
			f := strings.Split(k, ".")
			if len(f) < 2 || !strings.EqualFold(f[0], "MetricDataQueries") {
				continue
			}
			if len(f) == 4 && f[0] == "MetricDataQueries" && f[1] == "member" && f[3] == "Id" {
				n++
			}
			// Every AccountId under MetricDataQueries, however its list
			// is numbered: MetricDataQueries.member.N.AccountId as the
			// SDKs send it, but also MetricDataQueries.N.AccountId, the
			// list style of SQS and EC2 that strs accepts too. Checking
			// only the four-part form let the other one name a linked
			// account past the check, should CloudWatch read it.
			if strings.EqualFold(f[len(f)-1], "AccountId") {
				if err := m.ownAccount(k, v); err != nil {
					return err
				}
			}
		}
	case treeInput:
		qs, err := in.member("MetricDataQueries")
		if err != nil {
			return err
		}
		if qs != nil && qs.kind == 'a' {
			n = len(qs.arr)
			for _, q := range qs.arr {
				a, err := m.str(q, "AccountId")
				if err != nil {
					return err
				}
				if err := m.ownAccount("AccountId", a); err != nil {
					return err
				}
			}
		}
	}
	if n > 0 {
		op.param("queries", strconv.Itoa(n))
	}
	return nil
}

// ownAccount refuses an account id other than the target's ("" is the
// caller's own account).
func (m *mapper) ownAccount(what, a string) error {
	if a != "" && a != m.r.Account {
		return m.failure(codeDenied, "%s %q names another account than the grant's target account %s (CloudWatch cross-account observability)", esc(what), esc(a), m.r.Account)
	}
	return nil
}

// linkedMetrics refuses ListMetrics forms that list the metrics of
// linked source accounts: IncludeLinkedAccounts, or an OwningAccount
// other than the target's.
func linkedMetrics(m *mapper, in input) error {
	linked, err := in.flag("IncludeLinkedAccounts")
	if err != nil {
		return err
	}
	if linked {
		return m.failure(codeDenied, "IncludeLinkedAccounts lists the metrics of other accounts linked to the upstream's; the grant's target is account %s", m.r.Account)
	}
	owner, err := in.str("OwningAccount")
	if err != nil {
		return err
	}
	return m.ownAccount("OwningAccount", owner)
}

func metricCheck(action string, data bool) func(m *mapper, in input, op *Op) error {
	return func(m *mapper, in input, op *Op) error {
		if data {
			if err := metricQueries(m, in, op); err != nil {
				return err
			}
		}
		if action == "cloudwatch:ListMetrics" {
			if err := linkedMetrics(m, in); err != nil {
				return err
			}
		}
		for k, p := range map[string]string{"Namespace": "namespace", "MetricName": "metricName"} {
			v, err := in.str(k)
			if err != nil {
				return err
			}
			op.param(p, v)
		}
		op.check(action, "*")
		return nil
	}
}

// describeAlarms checks cloudwatch:DescribeAlarms on every alarm named;
// without names, on arn:…:alarm:PREFIX* (the prefix given, or all
// alarms), so that only a grant covering every alarm the call may return
// allows it.
func describeAlarms(m *mapper, in input, op *Op) error {
	names, err := in.strs("AlarmNames")
	if err != nil {
		return err
	}
	prefix, err := in.str("AlarmNamePrefix")
	if err != nil {
		return err
	}
	if len(names) > 0 && prefix != "" {
		return m.failure(codeInvalid, "give AlarmNames or AlarmNamePrefix, not both")
	}
	for _, n := range names {
		if err := m.name("alarm name", n, 1, 255, nil); err != nil {
			return err
		}
		op.check("cloudwatch:DescribeAlarms", m.arn("cloudwatch", "alarm:"+n))
	}
	op.paramList("alarmNames", names)
	if len(names) == 0 {
		if prefix != "" {
			if err := m.name("AlarmNamePrefix", prefix, 1, 255, nil); err != nil {
				return err
			}
			op.param("alarmNamePrefix", prefix)
		}
		op.check("cloudwatch:DescribeAlarms", m.arn("cloudwatch", "alarm:"+prefix+"*"))
	}
	return nil
}

var streamChars = charset("_.-")

// stream returns the Kinesis stream ARN from StreamName or StreamARN;
// "" when the call names neither.
func (m *mapper) stream(in input, op *Op) (string, error) {
	name, err := in.str("StreamName")
	if err != nil {
		return "", err
	}
	arn, err := in.str("StreamARN")
	if err != nil {
		return "", err
	}
	if arn != "" {
		n, err := m.fromARN("StreamARN", arn, "kinesis", "stream/")
		if err != nil {
			return "", err
		}
		if name != "" && n != name {
			return "", m.failure(codeInvalid, "StreamARN %q is not the ARN of stream %q", esc(arn), esc(name))
		}
		name = n
	}
	if name == "" {
		return "", nil
	}
	if err := m.name("StreamName", name, 1, 128, streamChars); err != nil {
		return "", err
	}
	op.param("stream", name)
	return m.arn("kinesis", "stream/"+name), nil
}

// streamCheckK checks action on the stream; when the request names none
// (GetRecords with only a shard iterator, ListShards with a NextToken)
// IAM cannot tell either, and the check is on "*" unless required.
func streamCheckK(action string, required bool) func(m *mapper, in input, op *Op) error {
	return func(m *mapper, in input, op *Op) error {
		res, err := m.stream(in, op)
		if err != nil {
			return err
		}
		if res == "" {
			if required {
				return m.failure(codeInvalid, "StreamName or StreamARN is missing")
			}
			res = "*"
		}
		op.check(action, res)
		return nil
	}
}

// ecsCluster returns the cluster ARN for a name or ARN ("default" when
// absent, as ECS does).
func (m *mapper) ecsCluster(c string) (string, string, error) {
	if c == "" {
		c = "default"
	}
	if strings.HasPrefix(c, "arn:") {
		n, err := m.fromARN("cluster", c, "ecs", "cluster/")
		if err != nil {
			return "", "", err
		}
		c = n
	}
	if err := m.name("cluster", c, 1, 255, charset("_-")); err != nil {
		return "", "", err
	}
	return c, m.arn("ecs", "cluster/"+c), nil
}

func describeClusters(m *mapper, in input, op *Op) error {
	cs, err := in.strs("clusters")
	if err != nil {
		return err
	}
	if len(cs) == 0 {
		cs = []string{""}
	}
	var names []string
	for _, c := range cs {
		n, res, err := m.ecsCluster(c)
		if err != nil {
			return err
		}
		names = append(names, n)
		op.check("ecs:DescribeClusters", res)
	}
	op.paramList("clusters", names)
	return nil
}

// clusterParam reads and records the cluster a call names.
func clusterParam(m *mapper, in input, op *Op) (string, error) {
	c, err := in.str("cluster")
	if err != nil {
		return "", err
	}
	cluster, _, err := m.ecsCluster(c)
	if err != nil {
		return "", err
	}
	op.param("cluster", cluster)
	return cluster, nil
}

func describeServices(m *mapper, in input, op *Op) error {
	cluster, err := clusterParam(m, in, op)
	if err != nil {
		return err
	}
	ss, err := in.strs("services")
	if err != nil {
		return err
	}
	if len(ss) == 0 {
		return m.failure(codeInvalid, "services must list at least one service")
	}
	var names []string
	for _, s := range ss {
		if strings.HasPrefix(s, "arn:") {
			a, err := m.parseARN("service", s, "ecs", true)
			if err != nil {
				return err
			}
			// service/CLUSTER/NAME, or the older service/NAME.
			parts := strings.Split(a.resource, "/")
			switch {
			case len(parts) == 3 && parts[0] == "service" && parts[1] == cluster:
				s = parts[2]
			case len(parts) == 2 && parts[0] == "service":
				s = parts[1]
			default:
				return m.failure(codeInvalid, "service %q is not a service ARN in cluster %q", esc(s), esc(cluster))
			}
		}
		if err := m.name("service", s, 1, 255, charset("_-")); err != nil {
			return err
		}
		names = append(names, s)
		op.check("ecs:DescribeServices", m.arn("ecs", "service/"+cluster+"/"+s))
	}
	op.paramList("services", names)
	return nil
}

func listServices(m *mapper, in input, op *Op) error {
	if _, err := clusterParam(m, in, op); err != nil {
		return err
	}
	op.check("ecs:ListServices", "*")
	return nil
}

func init() {
	all := pJSON | pQuery | pCBOR
	register("monitoring", map[string]*spec{
		"GetMetricData": {protos: all, readOnly: true, fn: metricCheck("cloudwatch:GetMetricData", true),
			actions: "cloudwatch:GetMetricData", resources: "`*`; refused when a query's AccountId is another account", params: "queries (their number)"},
		"GetMetricStatistics": {protos: all, readOnly: true, fn: metricCheck("cloudwatch:GetMetricStatistics", false),
			actions: "cloudwatch:GetMetricStatistics", resources: "`*`", params: "namespace, metricName"},
		"ListMetrics": {protos: all, readOnly: true, fn: metricCheck("cloudwatch:ListMetrics", false),
			actions: "cloudwatch:ListMetrics", resources: "`*`; refused with IncludeLinkedAccounts or another OwningAccount", params: "namespace, metricName"},
		"DescribeAlarms": {protos: all, readOnly: true, fn: describeAlarms, actions: "cloudwatch:DescribeAlarms",
			resources: "`arn:aws:cloudwatch:R:A:alarm:NAME` per AlarmNames; else `…:alarm:PREFIX*` (`alarm:*` without a prefix)", params: "alarmNames, alarmNamePrefix"},
	})
	const stream = "`arn:aws:kinesis:R:A:stream/NAME` (StreamName or StreamARN)"
	register("kinesis", map[string]*spec{
		"DescribeStream":        {protos: pJSON, readOnly: true, fn: streamCheckK("kinesis:DescribeStream", true), actions: "kinesis:DescribeStream", resources: stream, params: "stream"},
		"DescribeStreamSummary": {protos: pJSON, readOnly: true, fn: streamCheckK("kinesis:DescribeStreamSummary", true), actions: "kinesis:DescribeStreamSummary", resources: stream, params: "stream"},
		"ListShards":            {protos: pJSON, readOnly: true, fn: streamCheckK("kinesis:ListShards", false), actions: "kinesis:ListShards", resources: stream + "; `*` with only a NextToken", params: "stream"},
		"GetShardIterator":      {protos: pJSON, readOnly: true, fn: streamCheckK("kinesis:GetShardIterator", true), actions: "kinesis:GetShardIterator", resources: stream, params: "stream"},
		"GetRecords":            {protos: pJSON, readOnly: true, fn: streamCheckK("kinesis:GetRecords", false), actions: "kinesis:GetRecords", resources: stream + "; `*` when only the shard iterator names it", params: "stream"},
		"PutRecord":             {protos: pJSON, fn: streamCheckK("kinesis:PutRecord", true), actions: "kinesis:PutRecord", resources: stream, params: "stream"},
		"PutRecords":            {protos: pJSON, fn: streamCheckK("kinesis:PutRecords", true), actions: "kinesis:PutRecords", resources: stream, params: "stream"},
		"ListStreams":           {protos: pJSON, readOnly: true, fn: everything("kinesis:ListStreams"), actions: "kinesis:ListStreams", resources: "`*`"},
	})
	register("ecs", map[string]*spec{
		"ListClusters": {protos: pJSON, readOnly: true, fn: everything("ecs:ListClusters"), actions: "ecs:ListClusters", resources: "`*`"},
		"DescribeClusters": {protos: pJSON, readOnly: true, fn: describeClusters, actions: "ecs:DescribeClusters",
			resources: "`arn:aws:ecs:R:A:cluster/NAME` per cluster (`default` when none)", params: "clusters"},
		"ListServices": {protos: pJSON, readOnly: true, fn: listServices, actions: "ecs:ListServices", resources: "`*`", params: "cluster"},
		"DescribeServices": {protos: pJSON, readOnly: true, fn: describeServices, actions: "ecs:DescribeServices",
			resources: "`arn:aws:ecs:R:A:service/CLUSTER/NAME` per service", params: "cluster, services"},
	})
}
