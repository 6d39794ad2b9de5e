package gateway

import "testing"

// TestRelays: an entry names its connection's client until removed;
// removing an old entry never removes a newer one for the same address
// (a port reused after the first connection closed).
func TestRelays(t *testing.T) {
	var nilRelays *Relays
	if _, ok := nilRelays.Client("127.0.0.1:5000"); ok {
		t.Fatal("a nil Relays named a client")
	}
	var r Relays
	remove := r.Add("127.0.0.1:5000", Relayed{Client: "10.0.0.7:41000"})
	if c, ok := r.Client("127.0.0.1:5000"); !ok || c.Client != "10.0.0.7:41000" {
		t.Fatalf("Client = %q, %v", c, ok)
	}
	if _, ok := r.Client("127.0.0.1:5001"); ok {
		t.Fatal("another connection was named")
	}
	remove()
	if _, ok := r.Client("127.0.0.1:5000"); ok {
		t.Fatal("the entry outlived its connection")
	}
	again := r.Add("127.0.0.1:5000", Relayed{Client: "10.0.0.8:42000", TLSClient: "ab"})
	remove() // the first connection's, called twice
	if c, ok := r.Client("127.0.0.1:5000"); !ok || c != (Relayed{Client: "10.0.0.8:42000", TLSClient: "ab"}) {
		t.Fatalf("after a stale remove: Client = %q, %v", c, ok)
	}
	again()
}
