package config_test

import "testing"

func TestGOGCSet(t *testing.T) {
	for _, tc := range []struct {
		vars map[string]string
		want bool
	}{
		{nil, false},
		{map[string]string{"GOGC": "100"}, true},
		{map[string]string{"GOGC": "off"}, true},
	} {
		c, err := load(tc.vars)
		if err != nil {
			t.Fatal(err)
		}
		if c.GOGCSet != tc.want {
			t.Errorf("%v: GOGCSet %t, want %t", tc.vars, c.GOGCSet, tc.want)
		}
	}
}
