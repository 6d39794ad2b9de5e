package awsops

import "strings"

var paramChars = charset("_.-/")

// parameter returns the parameter ARN for a name as GetParameter takes
// it: NAME or /PATH/NAME, or a parameter ARN, optionally ending in
// :VERSION or :LABEL (a selector IAM does not see). IAM's ARN drops the
// name's leading slash: "/app/db" and "app/db" are both parameter/app/db.
func (m *mapper) parameter(name string) (string, error) {
	n := name
	if strings.HasPrefix(n, "arn:") {
		p, err := m.fromARN("Name", n, "ssm", "parameter/")
		if err != nil {
			return "", err
		}
		n = p
	}
	if i := strings.IndexByte(n, ':'); i >= 0 {
		sel := n[i+1:]
		if err := m.name("parameter selector", sel, 1, 100, charset("_.-")); err != nil {
			return "", err
		}
		n = n[:i]
	}
	if err := m.name("parameter name", n, 1, 2048, paramChars); err != nil {
		return "", err
	}
	trimmed := strings.TrimPrefix(n, "/")
	if trimmed == "" || strings.HasPrefix(trimmed, "/") || strings.HasSuffix(trimmed, "/") || strings.Contains(trimmed, "//") {
		return "", m.failure(codeInvalid, "parameter name %q is not a valid name or /path/name", esc(name))
	}
	return m.arn("ssm", "parameter/"+trimmed), nil
}

// secretRefPrefix is Parameter Store's reserved path for references to
// Secrets Manager secrets: GetParameter and GetParameters of
// /aws/reference/secretsmanager/SECRET return the secret's value, and AWS
// authorizes them on the secret too (secretsmanager:GetSecretValue).
const secretRefPrefix = "aws/reference/secretsmanager/"

// parameterChecks adds action's check on the parameter name names and,
// for a reference to a Secrets Manager secret, secretsmanager:
// GetSecretValue on the secret: a grant on parameters alone must not read
// secrets through their Parameter Store path.
func (m *mapper) parameterChecks(action, name string, op *Op) error {
	res, err := m.parameter(name)
	if err != nil {
		return err
	}
	op.check(action, res)
	// The name as IAM sees it: no ARN prefix, leading slash or selector.
	n := strings.TrimPrefix(res, m.arn("ssm", "parameter/"))
	// Reserved names are matched without regard to case ("aws" and "ssm"
	// prefixes are reserved case-insensitively): a case variant costs
	// one more check, never one fewer.
	if len(n) > len(secretRefPrefix) && strings.EqualFold(n[:len(secretRefPrefix)], secretRefPrefix) {
		sec, err := m.secret(n[len(secretRefPrefix):])
		if err != nil {
			return err
		}
		op.check("secretsmanager:GetSecretValue", sec)
	}
	return nil
}

func getParameter(m *mapper, in input, op *Op) error {
	n, err := in.str("Name")
	if err != nil {
		return err
	}
	if err := m.parameterChecks("ssm:GetParameter", n, op); err != nil {
		return err
	}
	op.param("name", n)
	return decryption(in, op)
}

func getParameters(m *mapper, in input, op *Op) error {
	names, err := in.strs("Names")
	if err != nil {
		return err
	}
	if len(names) == 0 {
		return m.failure(codeInvalid, "Names must list at least one parameter")
	}
	for _, n := range names {
		if err := m.parameterChecks("ssm:GetParameters", n, op); err != nil {
			return err
		}
	}
	op.paramList("names", names)
	return decryption(in, op)
}

// getParametersByPath checks the path as a prefix: the resource is the
// pattern parameter/PATH/*, so that only a grant covering everything under
// the path ("…:parameter/app/*") allows it. IAM itself checks the path's
// ARN without the slash, which a grant on the single parameter /app would
// match; this is stricter. The '*' is needed: with the bare
// "parameter/PATH/" an exact statement naming that string would read
// every parameter under the path, which a policy's forbid on part of it
// (parameter/app/secret/*) does not see, as that exact resource overlaps
// nothing it names.
func getParametersByPath(m *mapper, in input, op *Op) error {
	p, err := in.str("Path")
	if err != nil {
		return err
	}
	if err := m.name("Path", p, 1, 2048, paramChars); err != nil {
		return err
	}
	trimmed := strings.Trim(p, "/")
	if !strings.HasPrefix(p, "/") || strings.Contains(trimmed, "//") || strings.HasPrefix(p, "//") {
		return m.failure(codeInvalid, "Path %q must start with / and not contain //", esc(p))
	}
	res := "parameter/"
	if trimmed != "" {
		res += trimmed + "/"
	}
	res += "*"
	op.param("path", p)
	if r, err := in.flag("Recursive"); err != nil {
		return err
	} else if r {
		op.param("recursive", "true")
	}
	op.check("ssm:GetParametersByPath", m.arn("ssm", res))
	return decryption(in, op)
}

// describeParameters lists the target account's parameters. With Shared
// it lists instead the parameters other accounts share with the
// upstream's (through AWS RAM), beyond the grant's one account, as
// includeLinkedAccounts does for log groups: refused.
func describeParameters(m *mapper, in input, op *Op) error {
	shared, err := in.flag("Shared")
	if err != nil {
		return err
	}
	if shared {
		return m.failure(codeDenied, "Shared lists the parameters other accounts share with the upstream's; the grant's target is account %s", m.r.Account)
	}
	op.check("ssm:DescribeParameters", "*")
	return nil
}

// decryption records WithDecryption; the result is secret either way
// (String parameters hold connection strings too, and the type is only
// known from the response).
func decryption(in input, op *Op) error {
	d, err := in.flag("WithDecryption")
	if err != nil {
		return err
	}
	if d {
		op.param("withDecryption", "true")
	}
	return nil
}

var secretChars = charset("/_+=.@-")

// secret returns the resource ARN for a SecretId: a name gives
// arn:…:secret:NAME; an ARN (complete with AWS's random six-character
// suffix, or partial without it) is kept as given.
func (m *mapper) secret(id string) (string, error) {
	n := id
	if strings.HasPrefix(id, "arn:") {
		s, err := m.fromARN("SecretId", id, "secretsmanager", "secret:")
		if err != nil {
			return "", err
		}
		n = s
	}
	if err := m.name("SecretId", n, 1, 512, secretChars); err != nil {
		return "", err
	}
	return m.arn("secretsmanager", "secret:"+n), nil
}

func secretCheck(action string) func(m *mapper, in input, op *Op) error {
	return func(m *mapper, in input, op *Op) error {
		id, err := in.str("SecretId")
		if err != nil {
			return err
		}
		res, err := m.secret(id)
		if err != nil {
			return err
		}
		op.param("secretId", id)
		for k, p := range map[string]string{"VersionStage": "versionStage", "VersionId": "versionId"} {
			v, err := in.str(k)
			if err != nil {
				return err
			}
			op.param(p, v)
		}
		op.check(action, res)
		return nil
	}
}

// kmsKey returns the key ARN a KeyId names, or "*" when IAM authorizes
// on a key the request does not name (an alias, or Decrypt without
// KeyId, where the key is inside the ciphertext).
func (m *mapper) kmsKey(id string, op *Op) (string, error) {
	if id == "" {
		return "*", nil
	}
	if err := m.name("KeyId", id, 1, 2048, charset("-_/:")); err != nil {
		return "", err
	}
	op.param("keyId", id)
	switch {
	case strings.HasPrefix(id, "arn:"):
		a, err := m.parseARN("KeyId", id, "kms", true)
		if err != nil {
			return "", err
		}
		if k, ok := strings.CutPrefix(a.resource, "key/"); ok {
			if err := m.name("key id", k, 1, 128, charset("-")); err != nil {
				return "", err
			}
			return m.arn("kms", "key/"+k), nil
		}
		if strings.HasPrefix(a.resource, "alias/") {
			return "*", nil
		}
		return "", m.failure(codeInvalid, "KeyId %q is not a key or alias ARN", esc(id))
	case strings.HasPrefix(id, "alias/"):
		return "*", nil
	}
	if err := m.name("KeyId", id, 1, 128, charset("-")); err != nil {
		return "", err
	}
	return m.arn("kms", "key/"+id), nil
}

func kmsCheck(action string, required bool) func(m *mapper, in input, op *Op) error {
	return func(m *mapper, in input, op *Op) error {
		id, err := in.str("KeyId")
		if err != nil {
			return err
		}
		if required && id == "" {
			return m.failure(codeInvalid, "KeyId is missing")
		}
		res, err := m.kmsKey(id, op)
		if err != nil {
			return err
		}
		op.check(action, res)
		return nil
	}
}

func init() {
	const param = "`arn:aws:ssm:R:A:parameter/NAME` (NAME without its leading slash)"
	const ref = "; for `/aws/reference/secretsmanager/SECRET`, also secretsmanager:GetSecretValue on `arn:aws:secretsmanager:R:A:secret:SECRET`"
	register("ssm", map[string]*spec{
		"GetParameter": {protos: pJSON, readOnly: true, secret: true, fn: getParameter,
			actions: "ssm:GetParameter", resources: param + ref, params: "name, withDecryption"},
		"GetParameters": {protos: pJSON, readOnly: true, secret: true, fn: getParameters,
			actions: "ssm:GetParameters", resources: param + " for every name in Names" + ref, params: "names, withDecryption"},
		"GetParametersByPath": {protos: pJSON, readOnly: true, secret: true, fn: getParametersByPath,
			actions: "ssm:GetParametersByPath", resources: "`arn:aws:ssm:R:A:parameter/PATH/*` (a pattern: only a grant covering the whole path allows it)", params: "path, recursive, withDecryption"},
		"DescribeParameters": {protos: pJSON, readOnly: true, fn: describeParameters,
			actions: "ssm:DescribeParameters", resources: "`*`; refused with Shared (parameters other accounts share)"},
	})
	const secret = "`arn:aws:secretsmanager:R:A:secret:NAME` from a name; the ARN as given (with or without AWS's `-XXXXXX` suffix)"
	register("secretsmanager", map[string]*spec{
		"GetSecretValue": {protos: pJSON, readOnly: true, secret: true, fn: secretCheck("secretsmanager:GetSecretValue"),
			actions: "secretsmanager:GetSecretValue", resources: secret, params: "secretId, versionStage, versionId"},
		"DescribeSecret": {protos: pJSON, readOnly: true, fn: secretCheck("secretsmanager:DescribeSecret"),
			actions: "secretsmanager:DescribeSecret", resources: secret, params: "secretId"},
		"ListSecrets": {protos: pJSON, readOnly: true, fn: everything("secretsmanager:ListSecrets"),
			actions: "secretsmanager:ListSecrets", resources: "`*`"},
	})
	const key = "`arn:aws:kms:R:A:key/ID` from a key id or key ARN; `*` for an alias"
	register("kms", map[string]*spec{
		"Decrypt": {protos: pJSON, readOnly: true, secret: true, fn: kmsCheck("kms:Decrypt", false),
			actions: "kms:Decrypt", resources: key + " or when KeyId is absent (the key is inside the ciphertext)", params: "keyId"},
		"Encrypt": {protos: pJSON, readOnly: true, fn: kmsCheck("kms:Encrypt", true),
			actions: "kms:Encrypt", resources: key, params: "keyId"},
		"DescribeKey": {protos: pJSON, readOnly: true, fn: kmsCheck("kms:DescribeKey", true),
			actions: "kms:DescribeKey", resources: key, params: "keyId"},
	})
}
