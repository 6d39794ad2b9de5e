package benchkit

import "testing"

func TestPerStat(t *testing.T) {
	for _, c := range []struct {
		name, out string
		n         int64
		want      string
	}{
		{"counts and a task clock", "4000,,context-switches,1000000,100.00,,\n2.5,msec,task-clock,1000000,100.00,1.2,CPUs utilized\n", 1000,
			" context-switches 4.000 task-clock 0.003"},
		{"an event not counted", "<not counted>,,cpu-migrations,0,0.00,,\n", 10, " cpu-migrations <not counted>"},
		{"comments skipped", "# started on x\n\n90,,syscalls:sys_enter_futex,1,100.00,,\n", 30, " syscalls:sys_enter_futex 3.000"},
		{"no event: perf's message", "event syntax error: 'bogus'\n", 5, "perf stat: event syntax error: 'bogus'"},
		{"no calls: counts whole", "7,,context-switches,1,100.00,,\n", 0, " context-switches 7.000"},
	} {
		if got := PerStat(c.out, c.n); got != c.want {
			t.Errorf("%s: PerStat = %q, want %q", c.name, got, c.want)
		}
	}
}
