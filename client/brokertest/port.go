package brokertest

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// portHold keeps a loopback port for a broker across its restarts. It is a
// TCP socket bound to the port and never listening, with SO_REUSEADDR and
// SO_REUSEPORT set, so that:
//   - the broker binds beside it (its own listeners set both options, and
//     its free-port check binds with SO_REUSEADDR, which a bound socket
//     that does not listen allows);
//   - no other socket is given the port while the broker is down: the
//     kernel hands neither bind(port 0) nor an outgoing connection's local
//     port a port that a bound socket holds. Without the hold, a broker
//     stopped for a restart frees its port, and another test's broker (or
//     any client's outgoing connection) can take it before the restart
//     binds it again.
//
// It receives no connections: only listening sockets do.
type portHold struct {
	fd   int
	addr string // HOST:PORT
}

// holdPort binds a held socket to a free port of host (an IPv4 address).
func holdPort(host string) (*portHold, error) {
	ip := net.ParseIP(host).To4()
	if ip == nil {
		return nil, fmt.Errorf("brokertest: %q is not an IPv4 address", host)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("brokertest: socket: %w", err)
	}
	for _, opt := range []int{unix.SO_REUSEADDR, unix.SO_REUSEPORT} {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, opt, 1); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("brokertest: setsockopt: %w", err)
		}
	}
	sa := &unix.SockaddrInet4{}
	copy(sa.Addr[:], ip)
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("brokertest: bind %s:0: %w", host, err)
	}
	bound, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("brokertest: getsockname: %w", err)
	}
	port := bound.(*unix.SockaddrInet4).Port
	return &portHold{fd: fd, addr: net.JoinHostPort(host, strconv.Itoa(port))}, nil
}

// release frees the port.
func (h *portHold) release() {
	if h.fd >= 0 {
		_ = unix.Close(h.fd)
		h.fd = -1
	}
}

// portFreePoll is how often waitPortFree looks again.
const portFreePoll = 5 * time.Millisecond

// waitPortFree waits until nothing listens on addr (HOST:PORT, IPv4), or
// timeout passes. A broker's listening sockets outlive its process for a
// moment after a SIGKILL: its io_uring instances hold them until the
// kernel tears the rings down, after the process is reaped. A broker
// restarted in that moment finds its port in use and exits. The check
// binds a socket with SO_REUSEADDR, as the broker's own check does: that
// fails only while a socket listens there (not for the port hold, which
// never listens).
func waitPortFree(addr string, timeout time.Duration) error {
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return err
	}
	ip := net.ParseIP(host).To4()
	if ip == nil {
		return nil // IPv6 or a name: Restart's retries alone cover it
	}
	sa := &unix.SockaddrInet4{Port: port}
	copy(sa.Addr[:], ip)
	deadline := time.Now().Add(timeout)
	for {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("brokertest: socket: %w", err)
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			unix.Close(fd)
			return fmt.Errorf("brokertest: setsockopt: %w", err)
		}
		err = unix.Bind(fd, sa)
		unix.Close(fd)
		switch {
		case err == nil:
			return nil
		case err != unix.EADDRINUSE:
			return fmt.Errorf("brokertest: bind %s: %w", addr, err)
		case time.Now().After(deadline):
			return fmt.Errorf("brokertest: %s still has a listener after %v", addr, timeout)
		}
		time.Sleep(portFreePoll)
	}
}
