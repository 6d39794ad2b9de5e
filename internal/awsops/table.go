package awsops

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
)

// spec is one mapped operation: how it is read and what it needs. The doc
// fields are what docs/aws-mapping.md shows (see Markdown).
type spec struct {
	protos   int
	readOnly bool
	secret   bool
	local    bool
	// refuse, when set, is the message every call of the operation is
	// refused with (sts:AssumeRole and friends).
	refuse string
	fn     func(m *mapper, in input, op *Op) error
	// docs
	actions, resources, params string
}

func (s *spec) protoList() string {
	var out []string
	for _, p := range []int{pJSON, pQuery, pREST, pCBOR} {
		if s.protos&p != 0 {
			out = append(out, protoName(p))
		}
	}
	return strings.Join(out, ", ")
}

// registry is every mapped operation by signing name and operation.
var registry = map[string]map[string]*spec{}

func register(service string, ops map[string]*spec) {
	if registry[service] == nil {
		registry[service] = map[string]*spec{}
	}
	for name, s := range ops {
		if _, dup := registry[service][name]; dup {
			panic("awsops: " + service + " " + name + " registered twice")
		}
		if s.fn == nil && s.refuse == "" {
			panic("awsops: " + service + " " + name + " has no mapping")
		}
		registry[service][name] = s
	}
}

// Services returns the signing names of the services the gateway maps,
// sorted: calls to any other are refused, so that an endpoints: setting
// for one could never be used.
func Services() []string {
	return slices.Sorted(maps.Keys(registry))
}

// serviceNames are the services' names for the docs.
var serviceNames = map[string]string{
	"dynamodb": "DynamoDB", "logs": "CloudWatch Logs", "ssm": "SSM Parameter Store",
	"secretsmanager": "Secrets Manager", "kms": "KMS", "lambda": "Lambda", "ec2": "EC2",
	"sts": "STS", "sqs": "SQS", "sns": "SNS", "monitoring": "CloudWatch", "kinesis": "Kinesis",
	"ecs": "ECS", "iam": "IAM",
}

// Markdown renders the mapping table that ends docs/aws-mapping.md.
func Markdown() string {
	var b strings.Builder
	b.WriteString("## Mapped operations\n\n")
	b.WriteString("Generated from `internal/awsops` (`awsops.Markdown()`); a test keeps it equal to the code.\n")
	b.WriteString("R and A are the target's region and account. \"read\" marks calls forwarded while their record is written; \"secret\" marks results never recorded.\n")
	services := make([]string, 0, len(registry))
	for s := range registry {
		services = append(services, s)
	}
	sort.Strings(services)
	for _, svc := range services {
		fmt.Fprintf(&b, "\n### %s (`%s`)\n\n", serviceNames[svc], svc)
		b.WriteString("| Operation | Protocol | IAM action | Resource | Recorded params | Notes |\n")
		b.WriteString("| --- | --- | --- | --- | --- | --- |\n")
		names := make([]string, 0, len(registry[svc]))
		for n := range registry[svc] {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			s := registry[svc][n]
			var notes []string
			if s.readOnly {
				notes = append(notes, "read")
			}
			if s.secret {
				notes = append(notes, "secret")
			}
			if s.local {
				notes = append(notes, "answered by the gateway")
			}
			if s.refuse != "" {
				notes = append(notes, "refused: "+s.refuse)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", n, s.protoList(), s.actions, s.resources, s.params, strings.Join(notes, "; "))
		}
	}
	return b.String()
}
