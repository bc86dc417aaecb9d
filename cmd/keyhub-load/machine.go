package main

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"syscall"
)

// machine describes where the figures come from.
type machine struct {
	cpu       string
	cores     int
	loadStart string
	loadAfter string
}

func describeMachine() machine {
	m := machine{cpu: "unknown CPU", cores: runtime.NumCPU(), loadStart: loadAverage()}
	if info, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(info), "\n") {
			if name, ok := strings.CutPrefix(line, "model name"); ok {
				m.cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(name), ":"))
				break
			}
		}
	}
	return m
}

func (m machine) String() string {
	return fmt.Sprintf("%d × %s, %s/%s, %s; load average before %s, after %s",
		m.cores, m.cpu, runtime.GOOS, runtime.GOARCH, runtime.Version(), m.loadStart, m.loadAfter)
}

// loadAverage is the 1-minute load average: other engineers' test runs on a
// shared machine show up here, and in the figures.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	fields := strings.Fields(string(b))
	if len(fields) == 0 {
		return "?"
	}
	return fields[0]
}

// raiseFileLimit lifts the soft open-file limit to the hard one; keyhub,
// started from here, inherits it. 10k sockets need 10k descriptors on each
// side.
func raiseFileLimit() error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	lim.Cur = lim.Max
	return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
}
