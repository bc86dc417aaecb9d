package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/keyhub/keyhub/internal/gateway/forwardauth"
)

// nginxServer is Debian's nginx running the README's auth_request server
// block (forwardauth.Nginx) in front of the same upstream as keyhub's
// proxy: the path the gateway row is compared with.
type nginxServer struct {
	cmd  *exec.Cmd
	addr string
	dir  string
}

// startNginx runs nginx in the foreground, one worker process (as many as
// keyhub has cores to spare on a two-core machine would be unfair either
// way: the row says which), everything it writes in a temporary prefix.
func startNginx(bin, keyhubAddr, upstreamAddr string) (*nginxServer, error) {
	path, err := exec.LookPath(bin)
	if err != nil {
		return nil, fmt.Errorf("nginx (%s) not found: install Debian's nginx (make loadtest does), or pass -nginx: %w", bin, err)
	}
	server := forwardauth.Nginx
	for _, addr := range []string{forwardauth.KeyhubAddr, forwardauth.UpstreamAddr, forwardauth.ListenAddr} {
		if !strings.Contains(server, addr) {
			return nil, fmt.Errorf("the README's nginx block does not name %s", addr)
		}
	}
	listen, err := freeAddr()
	if err != nil {
		return nil, err
	}
	server = strings.NewReplacer(forwardauth.KeyhubAddr, keyhubAddr, forwardauth.UpstreamAddr, upstreamAddr, forwardauth.ListenAddr, listen).Replace(server)
	dir, err := os.MkdirTemp("", "keyhub-load-nginx-")
	if err != nil {
		return nil, err
	}
	main := forwardauth.NginxMain(dir)
	if err := os.WriteFile(filepath.Join(dir, "keyhub.conf"), []byte(server), 0o600); err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(main), 0o600); err != nil {
		return nil, err
	}
	errorLog := filepath.Join(dir, "error.log")
	cmd := exec.Command(path, "-p", dir, "-c", conf, "-e", errorLog)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start nginx: %w", err)
	}
	n := &nginxServer{cmd: cmd, addr: listen, dir: dir}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-exited:
			log, _ := os.ReadFile(errorLog)
			return nil, fmt.Errorf("nginx exited (%v):\n%s", err, log)
		default:
		}
		if c, err := net.Dial("tcp", listen); err == nil {
			c.Close()
			return n, nil
		}
		if time.Now().After(deadline) {
			n.stop()
			return nil, errors.New("nginx did not listen within 10 s")
		}
	}
}

// stop ends nginx and removes its prefix.
func (n *nginxServer) stop() {
	_ = n.cmd.Process.Kill()
	_ = os.RemoveAll(n.dir)
}
