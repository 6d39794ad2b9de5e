package s3mem

import "encoding/xml"

// xmlns is S3's document namespace, which S3 puts on every response root.
const xmlns = "http://s3.amazonaws.com/doc/2006-03-01/"

func marshalXML(v any) ([]byte, error) {
	out, err := xml.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append([]byte(xml.Header), out...), nil
}

type xmlOwner struct {
	ID          string `xml:"ID"`
	DisplayName string `xml:"DisplayName"`
}

// owner is the one account that owns everything on this server.
var owner = xmlOwner{ID: "5a3e1e5b3d1f0a9c8b7e6d5c4b3a29180f1e2d3c4b5a69788796a5b4c3d2e1f0", DisplayName: "s3mem"}

type xmlTag struct {
	Key   string `xml:"Key"`
	Value string `xml:"Value"`
}

type xmlTagging struct {
	XMLName xml.Name `xml:"Tagging"`
	Xmlns   string   `xml:"xmlns,attr,omitempty"`
	TagSet  []xmlTag `xml:"TagSet>Tag"`
}
