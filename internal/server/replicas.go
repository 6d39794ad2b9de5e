package server

import (
	"crypto/rand"
	"encoding/hex"

	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/store/pgstore"
)

// withReplicas makes the grant service one replica among those sharing a
// PostgreSQL store: grant changes reach it through the store's
// notification connection (LISTEN/NOTIFY), and a credential it has not
// seen is read from the store. The replica id is random per process, so that a restarted replica is a new one. With
// SQLite (one process) nothing changes.
func withReplicas(o *grants.Options, st store.Store) {
	ps, ok := st.(*pgstore.Store)
	if !ok {
		return
	}
	b := make([]byte, 6)
	rand.Read(b)
	o.ReplicaID = "r_" + hex.EncodeToString(b)
	o.Notifier = ps.Listener(o.ReplicaID)
}
