package pggw

// Role is a grant's login role: what the gateway logs in upstream with.
type Role struct{ Name, Password string }
