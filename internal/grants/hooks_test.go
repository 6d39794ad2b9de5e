package grants

// SetBeforeRequestWrite runs f in every request after its decision and
// before its write, so that a test can interleave a load there.
func SetBeforeRequestWrite(s *Service, f func()) { s.beforeRequestWrite = f }
