package server

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// listenBacklog is the accept queue length of each shard's listener.
const listenBacklog = 4096

// listenReusePort opens a TCP listener on addr with SO_REUSEPORT, so every
// shard can have its own socket on the same port and the kernel spreads
// incoming connections across them. It runs once at start-up, outside any
// ring.
func listenReusePort(addr netip.AddrPort) (int, error) {
	family := unix.AF_INET
	if addr.Addr().Is6() && !addr.Addr().Is4In6() {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	for _, opt := range []int{unix.SO_REUSEADDR, unix.SO_REUSEPORT} {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, opt, 1); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("setsockopt: %w", err)
		}
	}
	if err := unix.Bind(fd, sockaddrOf(family, addr)); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("bind %s: %w", addr, err)
	}
	if err := unix.Listen(fd, listenBacklog); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("listen %s: %w", addr, err)
	}
	return fd, nil
}

// portFreeWaitMax bounds how long a start waits for its port. A process
// killed with kill -9 leaves its listening sockets open for a few
// milliseconds after it exits, while the kernel tears its io_uring down;
// a broker restarted at once on its port would otherwise fail with "in
// use" though nothing serves there.
const (
	portFreeWaitMax   = 2 * time.Second
	portFreeRetryWait = 20 * time.Millisecond
)

// waitPortFree is checkPortFree, tried again while the port is in use, up
// to portFreeWaitMax.
func waitPortFree(addr netip.AddrPort) error {
	deadline := time.Now().Add(portFreeWaitMax)
	for {
		err := checkPortFree(addr)
		if err == nil || !errors.Is(err, unix.EADDRINUSE) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(portFreeRetryWait)
	}
}

// checkPortFree fails when something already listens on addr. Every
// shard's listener sets SO_REUSEPORT, which would otherwise let a second
// broker started on the same port (by the same user) bind beside the
// first and take a share of its connections. A socket without
// SO_REUSEPORT cannot bind a port with a listener on it, so one is bound
// and closed first.
func checkPortFree(addr netip.AddrPort) error {
	family := unix.AF_INET
	if addr.Addr().Is6() && !addr.Addr().Is4In6() {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fmt.Errorf("setsockopt: %w", err)
	}
	if err := unix.Bind(fd, sockaddrOf(family, addr)); err != nil {
		if err == unix.EADDRINUSE {
			return fmt.Errorf("%s is in use (is another broker running?): %w", addr, err)
		}
		return fmt.Errorf("bind %s: %w", addr, err)
	}
	return nil
}

func sockaddrOf(family int, addr netip.AddrPort) unix.Sockaddr {
	if family == unix.AF_INET {
		return &unix.SockaddrInet4{Port: int(addr.Port()), Addr: addr.Addr().Unmap().As4()}
	}
	return &unix.SockaddrInet6{Port: int(addr.Port()), Addr: addr.Addr().As16()}
}

// boundPort is the port the kernel gave a listener bound to port 0.
func boundPort(fd int) (uint16, error) {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return 0, err
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return uint16(a.Port), nil
	case *unix.SockaddrInet6:
		return uint16(a.Port), nil
	}
	return 0, fmt.Errorf("unexpected socket address %T", sa)
}

// pinToCPU binds the calling thread to one CPU. The caller holds
// runtime.LockOSThread so the binding stays with its goroutine.
func pinToCPU(cpu int) error {
	var set unix.CPUSet
	set.Zero()
	set.Set(cpu)
	return unix.SchedSetaffinity(0, &set)
}

// allowedCPUs lists the CPUs this process may run on, in order.
func allowedCPUs() ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, err
	}
	var cpus []int
	for i := range 1024 {
		if set.IsSet(i) {
			cpus = append(cpus, i)
		}
	}
	return cpus, nil
}
