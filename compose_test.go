package docs_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/keyhub/keyhub/internal/apitest"
	"github.com/keyhub/keyhub/internal/testdep"
)

// Debian's docker-compose (no Docker engine needed) checks the file the
// README tells people to run.
func TestComposeFileIsValid(t *testing.T) {
	t.Parallel()
	compose := testdep.Program(t, "docker-compose")
	out, err := exec.Command(compose, "-f", "docker-compose.yml", "config", "-q").CombinedOutput()
	if err != nil {
		t.Fatalf("docker-compose config: %v\n%s", err, out)
	}
}

// composeNginxConf is the nginx configuration the compose file's lb service
// writes (the heredoc between <<'CONF' and CONF), with Compose's $$ escapes
// undone.
func composeNginxConf(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var conf []string
	in := false
	indent := ""
	for _, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case !in && strings.Contains(line, "<<'CONF'"):
			in = true
			indent = line[:len(line)-len(strings.TrimLeft(line, " "))]
		case in && trimmed == "CONF":
			return strings.ReplaceAll(strings.Join(conf, "\n"), "$$", "$")
		case in:
			conf = append(conf, strings.TrimPrefix(line, indent))
		}
	}
	t.Fatal("docker-compose.yml: no nginx configuration between <<'CONF' and CONF")
	return ""
}

// substitute replaces old by new in conf, failing unless old occurs once:
// a compose file whose shape changed must fail here, not test less.
func substitute(t *testing.T, conf, old, new string) string {
	t.Helper()
	if n := strings.Count(conf, old); n != 1 {
		t.Fatalf("the compose nginx configuration has %q %d times, want once:\n%s", old, n, conf)
	}
	return strings.Replace(conf, old, new, 1)
}

// The compose file's nginx configuration, run by the real nginx in front of
// two keyhub replicas (their addresses substituted for the compose
// network's): REST and the dashboard's WebSocket work through it with the
// browser's Origin (the port kept in Host), the dashboard's CSP allows the
// page's own socket, and a replica going away is not noticed.
func TestComposeNginx(t *testing.T) {
	t.Parallel()
	nginx := testdep.Program(t, "nginx")
	// nginx connects from loopback: it is the trusted proxy, as 172.28.0.10 is in compose.
	first := apitest.New(t, map[string]string{"TRUSTED_PROXIES": "127.0.0.1/32"})
	second := first.Replica(t, nil)

	port := freePort(t)
	conf := composeNginxConf(t)
	conf = substitute(t, conf, "listen 8080;", "listen "+port+";")
	conf = substitute(t, conf, "172.28.0.11:8080", first.Server.Listener.Addr().String())
	conf = substitute(t, conf, "172.28.0.12:8080", second.Server.Listener.Addr().String())
	startNginx(t, nginx, conf, port)
	base := "http://" + port

	// REST through nginx.
	jwt := first.Token(t, "alice@example.com")
	req, _ := http.NewRequest(http.MethodGet, base+"/v1/me", nil)
	req.Header.Set("Authorization", "Bearer "+jwt)
	for i := 0; i < 4; i++ { // round robin: both replicas answer
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /v1/me through nginx: %d", resp.StatusCode)
		}
	}

	// The dashboard's CSP names the page's own host with its port.
	resp, err := http.Get(base + "/dashboard/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "ws://"+port) {
		t.Errorf("the dashboard's CSP behind nginx does not allow ws://%s: %s", port, csp)
	}

	// The dashboard's WebSocket: a browser sends the page's origin.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, "ws://"+port+"/v1/ws", &websocket.DialOptions{HTTPHeader: http.Header{
		"Authorization": {"Bearer " + jwt},
		"Origin":        {base},
	}})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("WebSocket through nginx with Origin %s: %d %v", base, status, err)
	}
	defer ws.CloseNow()
	if _, _, err := ws.Read(ctx); err != nil { // welcome
		t.Fatal(err)
	}
	ws.Close(websocket.StatusNormalClosure, "")

	// One replica gone: nginx passes its requests to the other.
	second.Server.CloseClientConnections()
	second.Server.Listener.Close()
	for i := 0; i < 4; i++ {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /v1/me through nginx with one replica down: %d", resp.StatusCode)
		}
	}
}

// startNginx runs nginx in the foreground with conf as its http block's
// server configuration, listening on addr, until the test ends.
func startNginx(t *testing.T, nginx, conf, addr string) {
	t.Helper()
	dir := t.TempDir()
	// As root, nginx's workers run as nobody: they must reach their temp folders.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	temp := filepath.Join(dir, "temp")
	if err := os.Mkdir(temp, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(temp, 0o777)
	if err := os.WriteFile(filepath.Join(dir, "default.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	main := fmt.Sprintf(`daemon off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log stderr warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path %[2]s/body;
  proxy_temp_path %[2]s/proxy;
  fastcgi_temp_path %[2]s/fastcgi;
  uwsgi_temp_path %[2]s/uwsgi;
  scgi_temp_path %[2]s/scgi;
  include %[1]s/default.conf;
}
`, dir, temp)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	logs := &apitest.LogBuffer{} // read while nginx writes to it
	cmd := exec.Command(nginx, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"), "-e", "stderr")
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt) // SIGINT: fast shutdown
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	// Ready when it accepts connections.
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := net.Dial("tcp", addr)
		if err == nil {
			conn.Close()
			return
		}
		select {
		case err := <-exited:
			t.Fatalf("nginx exited: %v\n%s\nconfiguration:\n%s", err, logs.String(), conf)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx did not listen on %s\n%s", addr, logs.String())
		}
	}
}
