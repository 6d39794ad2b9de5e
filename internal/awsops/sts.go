package awsops

// callerIdentity is answered by the gateway with the grant's identity:
// forwarding it would show the upstream credentials' identity instead.
func callerIdentity(m *mapper, in input, op *Op) error {
	op.check("sts:GetCallerIdentity", "*")
	return nil
}

// ec2Describe maps every EC2 Describe* call: IAM does not scope them to
// resources.
var ec2Describe = &spec{protos: pQuery, readOnly: true,
	fn: func(m *mapper, in input, op *Op) error {
		op.check("ec2:"+op.Operation, "*")
		return nil
	},
	actions: "ec2:Describe…", resources: "`*`"}

// dynamic returns the spec of operations mapped by name pattern rather
// than one by one.
func dynamic(service, operation string) *spec {
	if service == "ec2" && len(operation) > len("Describe") && operation[:len("Describe")] == "Describe" {
		return ec2Describe
	}
	return nil
}

func init() {
	const noCreds = "the gateway's credentials are per grant and scoped; new credentials from STS would escape the grant's scope, its expiry and its recording. Ask for a grant on what the role would reach instead"
	refuse := func() *spec {
		return &spec{protos: pQuery, refuse: noCreds, actions: "—", resources: "—"}
	}
	register("sts", map[string]*spec{
		"GetCallerIdentity": {protos: pQuery, readOnly: true, local: true, fn: callerIdentity,
			actions: "sts:GetCallerIdentity", resources: "`*`"},
		"AssumeRole":                refuse(),
		"AssumeRoleWithWebIdentity": refuse(),
		"AssumeRoleWithSAML":        refuse(),
		"AssumeRoot":                refuse(),
		"GetSessionToken":           refuse(),
		"GetFederationToken":        refuse(),
	})
	register("ec2", map[string]*spec{"Describe*": ec2Describe})
}
