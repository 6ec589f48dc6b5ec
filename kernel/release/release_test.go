package release

import "testing"

func TestParse(t *testing.T) {
	for in, want := range map[string]Version{
		"3.10.0-1160.el7.x86_64": Mainline(3, 10), "4.18.0-513.el8.x86_64": Mainline(4, 18), "5.4.0-150-generic": Mainline(5, 4),
		"6.1.0-28-amd64": Mainline(6, 1), "6.12": Mainline(6, 12), "5.10.0-rc1": Mainline(5, 10), "6.7rc2": Mainline(6, 7),
	} {
		if got, err := Parse(in); err != nil || got != want {
			t.Errorf("Parse(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "6", "x.1", "6.x"} {
		if v, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) = %v, want an error", bad, v)
		}
	}
	if !(Mainline(3, 10)).Before(Floor) || (Mainline(4, 14)).Before(Floor) || (Mainline(5, 4)).Before(Floor) || !(Mainline(4, 9)).Before(Floor) {
		t.Fatal("Before")
	}
	if r, err := Running(); err != nil || r == "" {
		t.Fatalf("Running = %q, %v", r, err)
	} else if _, err := Parse(r); err != nil {
		t.Fatal(err)
	}
}
