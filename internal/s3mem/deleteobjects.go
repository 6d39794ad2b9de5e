package s3mem

import (
	"encoding/xml"
	"net/http"

	"github.com/airlock-dev/airlock/internal/s3err"
)

type xmlDeleteRequest struct {
	Quiet   bool `xml:"Quiet"`
	Objects []struct {
		Key string `xml:"Key"`
	} `xml:"Object"`
}

type xmlDeleted struct {
	Key string `xml:"Key"`
}

type xmlDeleteError struct {
	Key     string `xml:"Key"`
	Code    string `xml:"Code"`
	Message string `xml:"Message"`
}

type xmlDeleteResult struct {
	XMLName xml.Name         `xml:"DeleteResult"`
	Xmlns   string           `xml:"xmlns,attr"`
	Deleted []xmlDeleted     `xml:"Deleted"`
	Errors  []xmlDeleteError `xml:"Error"`
}

// maxDeleteKeys is S3's limit on one DeleteObjects request.
const maxDeleteKeys = 1000

func (c *call) deleteObjects() error {
	if err := c.s.st.hasBucket(c.bucket); err != nil {
		return err
	}
	body, err := c.readXMLBody()
	if err != nil {
		return err
	}
	if err := checkContentMD5(c.r.Header, body); err != nil {
		return err
	}
	var req xmlDeleteRequest
	if err := xml.Unmarshal(body, &req); err != nil || len(req.Objects) == 0 || len(req.Objects) > maxDeleteKeys {
		return s3err.New(s3err.MalformedXML, "The XML you provided was not well-formed or did not validate against our published schema")
	}
	res := xmlDeleteResult{Xmlns: xmlns}
	for _, o := range req.Objects {
		err := checkKey(o.Key)
		if err == nil {
			err = c.s.st.remove(c.bucket, o.Key)
		}
		if err != nil {
			e := s3err.As(err)
			res.Errors = append(res.Errors, xmlDeleteError{o.Key, e.Code, e.Message})
			continue
		}
		if !req.Quiet {
			res.Deleted = append(res.Deleted, xmlDeleted{o.Key})
		}
	}
	return c.writeXML(http.StatusOK, res)
}
