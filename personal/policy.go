package personal

// Rule declares the personal data of one event type.
type Rule struct {
	// Type is the event type.
	Type string
	// SchemaVersion limits the rule to one schema version of Type; 0
	// applies it to all (the fields then have the same names in each).
	SchemaVersion int
	// Fields are the names of the top-level JSON fields that hold personal
	// data. Each value, whatever its JSON type, is stored as a token.
	Fields []string
	// Subject is the field that names whose data it is (the data key's
	// subject). Empty: the stream's subject, named by an earlier event of
	// the same stream (for an order, its creation's customer_id).
	Subject string
}

// Policy is a set of rules, by event type and schema version.
type Policy struct {
	rules map[string][]Rule
}

// NewPolicy returns the policy of rules.
func NewPolicy(rules ...Rule) *Policy {
	p := &Policy{rules: map[string][]Rule{}}
	for _, r := range rules {
		p.rules[r.Type] = append(p.rules[r.Type], r)
	}
	return p
}

// rule returns the rule of an event, preferring one of its exact schema
// version. A schema version 0 means 1, as for chronicle.Event.
func (p *Policy) rule(typ string, version int) (Rule, bool) {
	if version == 0 {
		version = 1
	}
	var any Rule
	found := false
	for _, r := range p.rules[typ] {
		if r.SchemaVersion == version {
			return r, true
		}
		if r.SchemaVersion == 0 {
			any, found = r, true
		}
	}
	return any, found
}

// field returns the field of r that member m of data is, if any.
func (r Rule) field(data []byte, m member) (string, bool) {
	for _, f := range r.Fields {
		if m.named(data, f) {
			return f, true
		}
	}
	return "", false
}
