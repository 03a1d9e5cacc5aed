package main

import (
	"bufio"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/strata-db/strata/client"
)

// Encodings of keys, values and header values (--value-encoding).
const (
	// encodingAuto writes text as it is and bytes that are not UTF-8 as
	// base64, saying so in JSON: lossless and readable.
	encodingAuto = "auto"
	// encodingText writes text; bytes that are not UTF-8 become U+FFFD in
	// JSON (lossy, by choice).
	encodingText   = "text"
	encodingBase64 = "base64"
	encodingHex    = "hex"
)

// recordPrinter writes one record to the output.
type recordPrinter interface {
	print(w *bufio.Writer, r *client.Record) error
}

// newPrinter makes the printer of --format: "text" (the value and a line
// end), "json" (one object a line) or a format string of %-verbs.
func newPrinter(format, encoding string) (recordPrinter, error) {
	switch encoding {
	case encodingAuto, encodingText, encodingBase64, encodingHex:
	default:
		return nil, fmt.Errorf("--value-encoding %q: want auto, text, base64 or hex", encoding)
	}
	switch format {
	case "text":
		return newFormatPrinter(`%v\n`, encoding)
	case "json":
		return &jsonPrinter{encoding: encoding}, nil
	}
	if !strings.Contains(format, "%") {
		return nil, fmt.Errorf("--format %q: want text, json or a format string with %%-verbs", format)
	}
	return newFormatPrinter(format, encoding)
}

// formatPrinter prints a kcat/rpk-style format string: %t topic, %p
// partition, %o offset, %k key, %v value, %h headers (k=v, comma
// separated), %T timestamp (unix ms), %% a percent sign; \n, \t and \\
// are a line end, a tab and a backslash.
type formatPrinter struct {
	parts    []formatPart
	encoding string
}

// formatPart is literal text, or a verb when verb is not 0.
type formatPart struct {
	literal string
	verb    byte
}

func newFormatPrinter(format, encoding string) (*formatPrinter, error) {
	p := &formatPrinter{encoding: encoding}
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			p.parts = append(p.parts, formatPart{literal: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(format); i++ {
		c := format[i]
		switch {
		case c == '%' && i+1 < len(format):
			i++
			switch v := format[i]; v {
			case '%':
				lit.WriteByte('%')
			case 't', 'p', 'o', 'k', 'v', 'h', 'T':
				flush()
				p.parts = append(p.parts, formatPart{verb: v})
			default:
				return nil, fmt.Errorf("--format: unknown verb %%%c (want %%t %%p %%o %%k %%v %%h %%T or %%%%)", v)
			}
		case c == '%':
			return nil, fmt.Errorf("--format %q ends in a lone %%", format)
		case c == '\\' && i+1 < len(format):
			i++
			switch e := format[i]; e {
			case 'n':
				lit.WriteByte('\n')
			case 't':
				lit.WriteByte('\t')
			case '\\':
				lit.WriteByte('\\')
			default:
				lit.WriteByte('\\')
				lit.WriteByte(e)
			}
		default:
			lit.WriteByte(c)
		}
	}
	flush()
	return p, nil
}

func (p *formatPrinter) print(w *bufio.Writer, r *client.Record) error {
	for _, part := range p.parts {
		switch part.verb {
		case 0:
			w.WriteString(part.literal)
		case 't':
			w.WriteString(r.Topic)
		case 'p':
			w.WriteString(strconv.Itoa(int(r.Partition)))
		case 'o':
			w.WriteString(strconv.FormatInt(r.Offset, 10))
		case 'T':
			w.WriteString(strconv.FormatInt(r.Timestamp.UnixMilli(), 10))
		case 'k':
			w.WriteString(p.raw(r.Key))
		case 'v':
			w.WriteString(p.raw(r.Value))
		case 'h':
			for i, h := range r.Headers {
				if i > 0 {
					w.WriteByte(',')
				}
				w.WriteString(p.raw(h.Key))
				w.WriteByte('=')
				w.WriteString(p.raw(h.Value))
			}
		}
	}
	return nil
}

// raw is b for a format string: its bytes as they are under auto and
// text, encoded under base64 and hex.
func (p *formatPrinter) raw(b []byte) string {
	switch p.encoding {
	case encodingBase64:
		return base64.StdEncoding.EncodeToString(b)
	case encodingHex:
		return hex.EncodeToString(b)
	}
	return string(b)
}

// jsonRecord is one record in --format json. A key or value that is not
// text under --value-encoding auto is base64, and key_encoding or
// value_encoding says so.
type jsonRecord struct {
	Topic         string       `json:"topic"`
	Partition     int32        `json:"partition"`
	Offset        int64        `json:"offset"`
	Timestamp     int64        `json:"timestamp"` // unix milliseconds
	Key           *string      `json:"key"`
	KeyEncoding   string       `json:"key_encoding,omitempty"`
	Value         *string      `json:"value"`
	ValueEncoding string       `json:"value_encoding,omitempty"`
	Headers       []jsonHeader `json:"headers"`
}

type jsonHeader struct {
	Key           string  `json:"key"`
	Value         *string `json:"value"`
	ValueEncoding string  `json:"value_encoding,omitempty"`
}

type jsonPrinter struct {
	encoding string
}

func (p *jsonPrinter) print(w *bufio.Writer, r *client.Record) error {
	jr := jsonRecord{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp.UnixMilli(),
		Headers: []jsonHeader{}}
	jr.Key, jr.KeyEncoding = p.encode(r.Key)
	jr.Value, jr.ValueEncoding = p.encode(r.Value)
	for _, h := range r.Headers {
		jh := jsonHeader{Key: strings.ToValidUTF8(string(h.Key), "\uFFFD")}
		jh.Value, jh.ValueEncoding = p.encode(h.Value)
		jr.Headers = append(jr.Headers, jh)
	}
	b, err := json.Marshal(&jr)
	if err != nil {
		return err
	}
	w.Write(b)
	return w.WriteByte('\n')
}

// encode is b as a JSON string (nil for null bytes) and the encoding to
// name beside it ("" for text).
func (p *jsonPrinter) encode(b []byte) (*string, string) {
	if b == nil {
		return nil, ""
	}
	var s, enc string
	switch {
	case p.encoding == encodingBase64 || (p.encoding == encodingAuto && !utf8.Valid(b)):
		s, enc = base64.StdEncoding.EncodeToString(b), encodingBase64
	case p.encoding == encodingHex:
		s, enc = hex.EncodeToString(b), encodingHex
	default:
		s = strings.ToValidUTF8(string(b), "\uFFFD")
	}
	return &s, enc
}
