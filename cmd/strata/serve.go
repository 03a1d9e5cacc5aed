package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/BurntSushi/toml"
	"github.com/spf13/cobra"

	"github.com/strata-db/strata/server"
)

// serveConfig is everything `strata serve` can be told, from flags or a
// TOML file (--config); a flag given on the command line wins over the file.
type serveConfig struct {
	DataDir  string `toml:"data_dir"`
	Listen   string `toml:"listen"`
	Admin    string `toml:"admin"`
	Cores    int    `toml:"cores"`
	NodeID   int32  `toml:"node_id"`
	Pin      bool   `toml:"pin"`
	LogLevel string `toml:"log_level"`
}

// The embedded defaults: `strata serve` with no flags and no file runs a
// working single-node broker.
var defaultServeConfig = serveConfig{
	DataDir:  "./data",
	Listen:   "127.0.0.1:9292",
	Admin:    "127.0.0.1:9293",
	NodeID:   1,
	Pin:      true,
	LogLevel: "info",
}

func serveCommand() *cobra.Command {
	cfg := defaultServeConfig
	var configFile string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run a broker",
		Long: `Run a Strata broker. With no flags it serves on 127.0.0.1:9292 from ./data,
with one shard per available CPU and metrics on 127.0.0.1:9293/metrics.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if configFile != "" {
				fileCfg := defaultServeConfig
				if _, err := toml.DecodeFile(configFile, &fileCfg); err != nil {
					return usageError{fmt.Errorf("config %s: %w", configFile, err)}
				}
				// Flags set on the command line override the file.
				flags := cmd.Flags()
				override := func(name string, apply func()) {
					if flags.Changed(name) {
						apply()
					}
				}
				override("data-dir", func() { fileCfg.DataDir = cfg.DataDir })
				override("listen", func() { fileCfg.Listen = cfg.Listen })
				override("admin", func() { fileCfg.Admin = cfg.Admin })
				override("cores", func() { fileCfg.Cores = cfg.Cores })
				override("node-id", func() { fileCfg.NodeID = cfg.NodeID })
				override("pin", func() { fileCfg.Pin = cfg.Pin })
				override("log-level", func() { fileCfg.LogLevel = cfg.LogLevel })
				cfg = fileCfg
			}
			return serve(cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&configFile, "config", "", "TOML file with any of: data_dir, listen, admin, cores, node_id, pin, log_level")
	f.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "folder for partition logs and metadata")
	f.StringVar(&cfg.Listen, "listen", cfg.Listen, "client address HOST:PORT")
	f.StringVar(&cfg.Admin, "admin", cfg.Admin, "metrics and pprof address HOST:PORT (empty: off)")
	f.IntVar(&cfg.Cores, "cores", cfg.Cores, "shards, one per core (0: every available CPU)")
	f.Int32Var(&cfg.NodeID, "node-id", cfg.NodeID, "this broker's id")
	f.BoolVar(&cfg.Pin, "pin", cfg.Pin, "pin each shard's thread to its CPU")
	f.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "debug, info, warn or error")
	return cmd
}

func serve(cfg serveConfig) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return usageError{fmt.Errorf("--log-level %q: %w", cfg.LogLevel, err)}
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	b, err := server.StartBroker(server.BrokerConfig{DataDir: cfg.DataDir, Listen: cfg.Listen, Cores: cfg.Cores,
		Pin: cfg.Pin, NodeID: cfg.NodeID, Logger: log})
	if err != nil {
		return err
	}
	var admin *server.AdminServer
	if cfg.Admin != "" {
		admin, err = server.StartAdmin(cfg.Admin, b.Registry())
		if err != nil {
			b.Stop()
			return fmt.Errorf("admin listener: %w", err)
		}
	}
	adminAddr := ""
	if admin != nil {
		adminAddr = admin.Addr()
	}
	log.Info("strata broker ready", "listen", b.Addr().String(), "admin", adminAddr,
		"shards", len(b.Server().Shards()), "data_dir", cfg.DataDir, "node_id", cfg.NodeID)

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	sig := <-stop
	log.Info("shutting down", "signal", sig.String())
	if admin != nil {
		admin.Close()
	}
	if err := b.Stop(); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}
