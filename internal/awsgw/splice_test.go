package awsgw

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// bothPaths runs f with the answer's middle spliced (where this system
// can) and copied, so that each test shows the two record the same.
func bothPaths(t *testing.T, f func(t *testing.T, splice bool)) {
	was := canSplice
	t.Cleanup(func() { canSplice = was })
	for _, on := range []bool{true, false} {
		if on && !was {
			continue // no splicing on this system
		}
		t.Run(fmt.Sprintf("splice=%v", on), func(t *testing.T) {
			canSplice = on
			f(t, on)
		})
	}
}

func TestSpliceCarriesLargeAnswersWhole(t *testing.T) {
	bothPaths(t, func(t *testing.T, splice bool) {
		e := newEnv(t)
		g := e.grant(walkScope)
		c := e.client(g)
		rng := rand.New(rand.NewPCG(1, 2))
		for _, size := range []int{100 << 10, spliceMin + spliceTail + 1, 1 << 20, 3<<20 + 17} {
			want := make([]byte, size)
			for i := range want {
				want[i] = byte(rng.Uint32())
			}
			key := fmt.Sprintf("app/big-%d", size)
			e.up.put("logs/"+key, want)
			before := splicedBytes.Load()
			// Twice: the second answer comes on the connection the first left.
			for range 2 {
				out, err := c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String(key)})
				if err != nil {
					t.Fatalf("GetObject %d bytes: %v", size, errCode(err))
				}
				got, err := io.ReadAll(out.Body)
				out.Body.Close()
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("%d bytes: read %d bytes (%v), equal %v", size, len(got), err, bytes.Equal(got, want))
				}
			}
			moved := splicedBytes.Load() - before
			switch {
			case !splice && moved != 0:
				t.Fatalf("%d bytes spliced with splicing off", moved)
			case splice && size >= 1<<20 && moved == 0:
				t.Fatalf("nothing of two %d-byte answers spliced", size)
			case moved > 2*int64(size-spliceTail):
				t.Fatalf("%d bytes of two %d-byte answers spliced: the last %d of each must be copied", moved, size, spliceTail)
			}
			if size < spliceMin+spliceTail && moved != 0 {
				t.Fatalf("a %d-byte answer was spliced (%d bytes)", size, moved)
			}
		}
		res := e.results(g, 8)
		for i, r := range res {
			if r.Error != "" || r.Status != "200" {
				t.Fatalf("result %d: %+v", i, r)
			}
		}
		for i, size := range []int{100 << 10, spliceMin + spliceTail + 1, 1 << 20, 3<<20 + 17} {
			for j := range 2 {
				if r := res[2*i+j]; r.BytesOut != int64(size) {
					t.Fatalf("result %d: bytes out %d, want %d", 2*i+j, r.BytesOut, size)
				}
			}
		}
		tr := e.gw.targets[testTarget].rt.(*h1Transport)
		tr.mu.Lock()
		idle := 0
		for _, l := range tr.idle {
			idle += len(l)
		}
		tr.mu.Unlock()
		if idle != 1 {
			t.Fatalf("%d idle upstream connections after calls one after another, want 1 (each answer read whole and its connection reused)", idle)
		}
	})
}

// brokenUpstream answers every request with a 200 that declares size
// bytes, sends sent of them and then ends the connection, with a reset
// if reset.
func brokenUpstream(t *testing.T, size, sent int, reset bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				if _, err := http.ReadRequest(br); err != nil {
					return
				}
				fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nETag: \"e\"\r\n\r\n", size)
				c.Write(bytes.Repeat([]byte{'b'}, sent))
				if reset {
					c.(*net.TCPConn).SetLinger(0)
				}
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

func TestSpliceUpstreamBreaksMidAnswer(t *testing.T) {
	for _, reset := range []bool{false, true} {
		t.Run(fmt.Sprintf("reset=%v", reset), func(t *testing.T) {
			bothPaths(t, func(t *testing.T, splice bool) {
				const size, sent = 2 << 20, 512 << 10
				url := brokenUpstream(t, size, sent, reset)
				e := newEnv(t, func(o *Options) { o.Targets[0].Endpoint = url })
				g := e.grant(walkScope)
				before := splicedBytes.Load()
				out, err := e.client(g).GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/x")})
				if err == nil {
					n, rerr := io.Copy(io.Discard, out.Body)
					out.Body.Close()
					if rerr == nil {
						t.Fatalf("the client read a broken answer without an error (%d bytes)", n)
					}
				}
				r := e.results(g, 1)[0]
				if !strings.HasPrefix(r.Error, "upstream response broken") || r.BytesOut > sent {
					t.Fatalf("result: %+v", r)
				}
				if moved := splicedBytes.Load() - before; splice != (moved > 0) {
					t.Fatalf("%d bytes spliced (splicing %v)", moved, splice)
				}
			})
		})
	}
}

// A client that goes away in the middle of a large answer: the record
// says so, whichever path carried the answer.
func TestSpliceClientGoesAwayMidAnswer(t *testing.T) {
	bothPaths(t, func(t *testing.T, splice bool) {
		e := newEnv(t)
		g := e.grant(walkScope)
		const size = 32 << 20
		e.up.put("logs/app/huge", bytes.Repeat([]byte{'h'}, size))
		before := splicedBytes.Load()
		out, err := e.client(g).GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/huge")})
		if err != nil {
			t.Fatalf("GetObject: %v", errCode(err))
		}
		if _, err := io.ReadFull(out.Body, make([]byte, 256<<10)); err != nil {
			t.Fatal(err)
		}
		out.Body.Close() // the rest unread: the client's connection closes
		r := e.results(g, 1)[0]
		if r.Error != "client went away" || r.BytesOut >= size {
			t.Fatalf("result: %+v", r)
		}
		if moved := splicedBytes.Load() - before; splice != (moved > 0) {
			t.Fatalf("%d bytes spliced (splicing %v)", moved, splice)
		}
	})
}
