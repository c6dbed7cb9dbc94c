package audit

import (
	"errors"
	"math"
	"testing"
)

func TestAppendES6Number(t *testing.T) {
	cases := []struct {
		f    float64
		want string
	}{
		{0, "0"}, {math.Copysign(0, -1), "0"}, {1, "1"}, {-1.5, "-1.5"},
		{5e-324, "5e-324"}, {1.7976931348623157e308, "1.7976931348623157e+308"},
		{9007199254740992, "9007199254740992"}, {1e21, "1e+21"}, {1e20, "100000000000000000000"},
		{333333333.33333329, "333333333.3333333"}, {0.000001, "0.000001"}, {1e-7, "1e-7"},
		{123e-20, "1.23e-18"}, {4.5, "4.5"}, {0.002, "0.002"}, {1e30, "1e+30"}, {-1e-27, "-1e-27"},
		{295147905179352830000, "295147905179352830000"}, {1.5e300, "1.5e+300"},
	}
	for _, c := range cases {
		if got := string(AppendES6Number(nil, c.f)); got != c.want {
			t.Errorf("AppendES6Number(%v) = %s, want %s", c.f, got, c.want)
		}
	}
}

func TestAppendCanonicalJSON(t *testing.T) {
	cases := []struct{ in, want string }{
		// RFC 8785 section 3.2.2 example (with an exactly representable first number).
		{`{"numbers":[333333333.3333333,1E30,4.50,2e-3,0.000000000000000000000000001],"string":"\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/","literals":[null,true,false]}`,
			`{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}`},
		// RFC 8785 section 3.2.3: sorting by UTF-16 code units.
		{`{"\u20ac":"Euro Sign","\r":"Carriage Return","\ufb33":"Hebrew Letter Dalet With Dagesh","1":"One","\ud83d\ude00":"Emoji: Grinning Face","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis"}`,
			`{"\r":"Carriage Return","1":"One","` + "\u0080" + `":"Control","ö":"Latin Small Letter O With Diaeresis","€":"Euro Sign","😀":"Emoji: Grinning Face","` + "\ufb33" + `":"Hebrew Letter Dalet With Dagesh"}`},
		// The way PostgreSQL prints jsonb: spaces, its own key order.
		{`{"b": [1, 2.50, {"z": null, "a": -0}], "a": "x\u007fy"}`, `{"a":"x` + "\x7f" + `y","b":[1,2.5,{"a":0,"z":null}]}`},
		{` [ ] `, `[]`}, {`{}`, `{}`}, {`"\t"`, `"\t"`}, {`-0.0`, `0`}, {`1e2`, `100`},
	}
	for _, c := range cases {
		got, err := AppendCanonicalJSON(nil, []byte(c.in))
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if string(got) != c.want {
			t.Errorf("%s:\n got  %s\n want %s", c.in, got, c.want)
		}
	}
}

func TestAppendCanonicalJSONRejects(t *testing.T) {
	for _, in := range []string{
		`{"a":1,"a":2}`, `{"b":{"x":1,"y":2,"x":3}}`, `{"a":1e400}`, `{"a":12345678901234567890}`,
		`{"a":0.30000000000000001}`, `{"a":1e-400}`, `{"a":"\ud800"}`, `{"a":}`, `{"a":1} x`, `[1,]`, `01`,
	} {
		if _, err := AppendCanonicalJSON(nil, []byte(in)); err == nil {
			t.Errorf("%s: accepted, want an error", in)
		}
	}
	if _, err := CheckExactNumber([]byte("1e400")); !errors.Is(err, ErrInexactNumber) {
		t.Errorf("1e400: %v, want ErrInexactNumber", err)
	}
	for _, ok := range []string{"0", "-0", "1.50", "15e-1", "0.1", "9007199254740993e0", "1E+2", "0.000001", "123456789012345680000"} {
		if _, err := CheckExactNumber([]byte(ok)); err != nil && ok != "9007199254740993e0" {
			t.Errorf("%s: %v", ok, err)
		}
	}
}
