// Package jsonlist writes a JSON array an element at a time, byte for byte
// as encoding/json's Encoder with SetIndent("", "  ") writes the whole
// slice ("[]" when empty, a newline after): for a listing read a page at a
// time (airlock grants -o json, airlock findings -o json, the console's
// JSON download, the sessions of airlock grant show -o json), which
// prints each page as it comes instead of holding every element.
package jsonlist

import (
	"encoding/json"
	"io"
)

// Writer writes one array to W: Add its elements, then Close it.
type Writer[T any] struct {
	W io.Writer
	// Prefix is the indentation of the line the array starts on: "" for
	// an array that is the whole document, "  " for the value of a member
	// of a top-level object (airlock grant show -o json's sessions), as
	// the Encoder indents it there. Such a nested array ends at its "]",
	// without the newline that ends the document.
	Prefix string
	n      int
}

// Add writes vs as the array's next elements.
func (j *Writer[T]) Add(vs []T) error {
	in := j.Prefix + "  "
	for _, v := range vs {
		b, err := json.MarshalIndent(v, in, "  ")
		if err != nil {
			return err
		}
		sep := ",\n" + in
		if j.n == 0 {
			sep = "[\n" + in
		}
		j.n++
		if _, err := io.WriteString(j.W, sep); err != nil {
			return err
		}
		if _, err := j.W.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// Close ends the array.
func (j *Writer[T]) Close() error {
	end := "\n" + j.Prefix + "]"
	if j.n == 0 {
		end = "[]"
	}
	if j.Prefix == "" {
		end += "\n"
	}
	_, err := io.WriteString(j.W, end)
	return err
}
