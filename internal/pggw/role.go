package pggw

import "github.com/airlock-dev/airlock/internal/pgroles"

// Role is a grant's login role: what the gateway logs in upstream with.
type Role = pgroles.Role

// *pgroles.Manager is the production RoleManager.
var _ interface {
	RoleManager
	reconciler
	BackendTerminator
} = (*pgroles.Manager)(nil)
