package awsops

import (
	"strings"
)

// node is the part of a JSON or CBOR body the mapper keeps: objects,
// arrays and scalars down to keepDepth; anything deeper, and any top-level
// member no operation reads, is validated and skipped, never stored.
type node struct {
	kind byte // 'o' object, 'a' array, 's' string, 'n' number, 't' true, 'f' false, '0' null, 'x' skipped or other
	str  string
	obj  []member
	arr  []*node
}

type member struct {
	name string
	val  *node
}

const (
	// keepDepth is how deep the decoders keep values: deep enough for
	// TransactItems[i].Put.TableName (depth 4 from the top object).
	keepDepth = 4
	// maxNodes bounds the nodes kept for one body; AWS's own limits
	// (100 keys in a batch, 10 parameter names, 50 log groups) stay far
	// below it.
	maxNodes = 8192
	// maxDepth bounds nesting in a CBOR body (JSON's decoder has its own
	// bound); DynamoDB allows 32 levels in an item.
	maxDepth = 64
)

// readMembers is the set of top-level member names any mapped operation
// reads; the decoders skip the others without keeping them.
var readMembers = func() map[string]bool {
	set := map[string]bool{}
	for _, n := range strings.Fields(`
		TableName IndexName KeyConditionExpression FilterExpression
		RequestItems TransactItems ResourcePolicy SSESpecification Tags
		logGroupName logGroupNames logGroupIdentifier logGroupIdentifiers logStreamName logStreamNames
		logGroupNamePrefix logStreamNamePrefix filterPattern queryString queryId queryLanguage
		includeLinkedAccounts accountIdentifiers unmask
		Name Names Path Recursive WithDecryption Shared
		SecretId VersionId VersionStage
		KeyId
		QueueUrl QueueName QueueOwnerAWSAccountId QueueNamePrefix
		StreamName StreamARN
		cluster clusters services
		Namespace MetricName AlarmNames AlarmNamePrefix MetricDataQueries
		IncludeLinkedAccounts OwningAccount
	`) {
		set[n] = true
	}
	return set
}()

// input is a decoded request, whatever its protocol.
type input interface {
	// str returns a top-level string member ("" when absent).
	str(name string) (string, error)
	// strs returns a top-level list of strings.
	strs(name string) ([]string, error)
	// flag returns a top-level boolean.
	flag(name string) (bool, error)
	// member returns a top-level member for nested reads (nil for
	// Query and Lambda inputs).
	member(name string) (*node, error)
}

// treeInput is a JSON or CBOR body.
type treeInput struct {
	m    *mapper
	root *node
}

// member returns a top-level member. The decoders keep only the members
// in readMembers: reading another one is a bug that would see nothing
// where the upstream sees something, so it refuses the call.
func (t treeInput) member(name string) (*node, error) {
	if !readMembers[name] {
		return nil, t.m.failure(codeDenied, "internal error: member %s is not kept by the decoders", name)
	}
	return t.m.get(t.root, name)
}

func (t treeInput) str(name string) (string, error) {
	v, err := t.member(name)
	if err != nil || v == nil || v.kind == '0' {
		return "", err
	}
	if v.kind != 's' {
		return "", t.m.failure(codeMalformed, "member %s must be a string", name)
	}
	return v.str, nil
}

func (t treeInput) strs(name string) ([]string, error) {
	v, err := t.member(name)
	if err != nil || v == nil || v.kind == '0' {
		return nil, err
	}
	if v.kind != 'a' {
		return nil, t.m.failure(codeMalformed, "member %s must be a list of strings", name)
	}
	out := make([]string, 0, len(v.arr))
	for _, e := range v.arr {
		if e.kind != 's' {
			return nil, t.m.failure(codeMalformed, "member %s must be a list of strings", name)
		}
		out = append(out, e.str)
	}
	return out, nil
}

func (t treeInput) flag(name string) (bool, error) {
	v, err := t.member(name)
	if err != nil || v == nil {
		return false, err
	}
	switch v.kind {
	case 't':
		return true, nil
	case 'f', '0':
		return false, nil
	}
	return false, t.m.failure(codeMalformed, "member %s must be a boolean", name)
}

// get returns the member name of object o (nil when absent). A member
// whose name differs from name only in case is refused: an upstream that
// matched names without regard to case would read it where we read
// nothing.
func (m *mapper) get(o *node, name string) (*node, error) {
	if o == nil || o.kind != 'o' {
		return nil, nil
	}
	var found *node
	for _, mb := range o.obj {
		if mb.name == name {
			found = mb.val
		} else if strings.EqualFold(mb.name, name) {
			return nil, m.failure(codeMalformed, "member %q differs from %q only in case", esc(mb.name), name)
		}
	}
	if found != nil && found.kind == 'x' {
		return nil, m.failure(codeMalformed, "member %s is nested too deeply", name)
	}
	return found, nil
}

// str returns a string member of o ("" when absent or null).
func (m *mapper) str(o *node, name string) (string, error) {
	v, err := m.get(o, name)
	if err != nil || v == nil || v.kind == '0' {
		return "", err
	}
	if v.kind != 's' {
		return "", m.failure(codeMalformed, "member %s must be a string", name)
	}
	return v.str, nil
}

// counter bounds the nodes one decode keeps.
type counter struct{ n int }

func (c *counter) add() bool {
	c.n++
	return c.n <= maxNodes
}
