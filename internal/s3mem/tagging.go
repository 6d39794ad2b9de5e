package s3mem

import (
	"encoding/xml"
	"net/http"

	"github.com/airlock-dev/airlock/internal/s3err"
)

func (c *call) getObjectTagging() error {
	o, err := c.s.st.get(c.bucket, c.key)
	if err != nil {
		return err
	}
	res := xmlTagging{Xmlns: xmlns, TagSet: []xmlTag{}}
	for _, t := range o.meta.tags {
		res.TagSet = append(res.TagSet, xmlTag(t))
	}
	return c.writeXML(http.StatusOK, res)
}

func (c *call) putObjectTagging() error {
	body, err := c.readXMLBody()
	if err != nil {
		return err
	}
	var req xmlTagging
	if err := xml.Unmarshal(body, &req); err != nil {
		return s3err.New(s3err.MalformedXML, "The XML you provided was not well-formed or did not validate against our published schema")
	}
	tags := make([]tag, 0, len(req.TagSet))
	for _, t := range req.TagSet {
		tags = append(tags, tag(t))
	}
	if err := checkTags(tags); err != nil {
		return err
	}
	if err := c.s.st.setTags(c.bucket, c.key, tags); err != nil {
		return err
	}
	c.w.WriteHeader(http.StatusOK)
	return nil
}

func (c *call) deleteObjectTagging() error {
	if err := c.s.st.setTags(c.bucket, c.key, nil); err != nil {
		return err
	}
	return c.noContent()
}
