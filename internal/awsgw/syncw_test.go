package awsgw

import (
	"errors"
	"io"
	"sync"
)

// syncWriter serialises writes (the gateway logs from several goroutines).
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func asErr(err error, target any) bool { return errors.As(err, target) }
