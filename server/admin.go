package server

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// AdminServer is the broker's HTTP listener for operators: Prometheus
// metrics at /metrics, Go profiles at /debug/pprof/, and /healthz.
type AdminServer struct {
	srv *http.Server
	ln  net.Listener
}

// adminShutdownTimeout bounds how long Close waits for scrapes in flight.
const adminShutdownTimeout = 5 * time.Second

// StartAdmin listens on addr and serves reg.
func StartAdmin(addr string, reg *prometheus.Registry) (*AdminServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	a := &AdminServer{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, ln: ln}
	go a.srv.Serve(ln)
	return a, nil
}

// Addr is the address the admin listener is bound to.
func (a *AdminServer) Addr() string { return a.ln.Addr().String() }

// Close stops the listener.
func (a *AdminServer) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), adminShutdownTimeout)
	defer cancel()
	if err := a.srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
