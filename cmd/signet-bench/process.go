package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is a server process the bench started.
type proc struct {
	cmd     *exec.Cmd
	url     string
	logPath string
}

func (p *proc) stop() {
	if p.cmd.Process == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

// status reads a field of /proc/<pid>/status in MB (VmHWM is the peak resident set).
func (p *proc) status(field string) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

func (p *proc) peakRSS() float64 { return p.status("VmHWM") }
func (p *proc) rss() float64     { return p.status("VmRSS") }

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitReady polls url until it answers 200, the process exits or the deadline passes.
func waitReady(ctx context.Context, p *proc, url string) error {
	exited := make(chan error, 1)
	go func() { _, err := p.cmd.Process.Wait(); exited <- err }()
	deadline := time.Now().Add(60 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-exited:
			return fmt.Errorf("server exited before it was ready (%v); log: %s", err, p.logPath)
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return fmt.Errorf("server not ready after 60s; log: %s", p.logPath)
}

func start(ctx context.Context, name, logPath string, args ...string) (*proc, error) {
	log, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &proc{cmd: cmd, logPath: logPath}, nil
}

// startSignet runs `signet serve` on a fresh data directory.
// startSignet starts `signet serve` on a free loopback port. issuer empty: the server's own URL
// (replicas pass the first one's, so every replica issues and accepts the same tokens); masterKey
// empty: generated into the data directory.
func startSignet(ctx context.Context, bin, dataDir, db, issuer, masterKey string) (*proc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	if issuer == "" {
		issuer = "http://" + addr
	}
	args := []string{"serve", "--data-dir", dataDir, "--addr", addr, "--issuer", issuer, "--log-level", "warn"}
	if db != "" {
		args = append(args, "--db", db)
	}
	if masterKey != "" {
		args = append(args, "--master-key", masterKey)
	}
	p, err := start(ctx, bin, dataDir+".log", args...)
	if err != nil {
		return nil, err
	}
	p.url = "http://" + addr
	if err := waitReady(ctx, p, p.url+"/ready"); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

// startBaseline re-executes this binary as the bare baseline server.
func startBaseline(ctx context.Context, dir string) (*proc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	p, err := start(ctx, self, filepath.Join(dir, "baseline.log"), "baseline-server", "--addr", addr)
	if err != nil {
		return nil, err
	}
	p.url = "http://" + addr
	if err := waitReady(ctx, p, p.url+"/ready"); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

// basicAuth is RFC 6749 §2.3.1 client authentication.
func basicAuth(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
}
