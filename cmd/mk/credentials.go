package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/keyhub/keyhub/api/client"
)

// defaultURL is the server of `make run`.
const defaultURL = "http://localhost:8080"

// credentials is what mk login stores.
type credentials struct {
	URL    string `json:"url"`
	APIKey string `json:"api_key"`
}

// credentialsPath is $XDG_CONFIG_HOME/keyhub/credentials, with XDG's
// default of ~/.config.
func (m *cli) credentialsPath() (string, error) {
	dir := m.getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home := m.getenv("HOME")
		if home == "" {
			return "", errors.New("neither XDG_CONFIG_HOME nor HOME is set: no place for the credentials file")
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "keyhub", "credentials"), nil
}

// loadCredentials reads the stored credentials; none stored is not an error.
func (m *cli) loadCredentials() (credentials, error) {
	path, err := m.credentialsPath()
	if err != nil {
		return credentials{}, err
	}
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return credentials{}, nil
	}
	if err != nil {
		return credentials{}, fmt.Errorf("read credentials: %w", err)
	}
	if info, err := os.Stat(path); err == nil && info.Mode().Perm()&0o077 != 0 {
		fmt.Fprintf(m.stderr, "mk: warning: %s is readable by others (mode %v): chmod 600 it\n", path, info.Mode().Perm())
	}
	var c credentials
	if err := json.Unmarshal(raw, &c); err != nil {
		return credentials{}, fmt.Errorf("read credentials %s: %w (mk logout removes it)", path, err)
	}
	return c, nil
}

// saveCredentials writes the credentials file with mode 0600 (its folder
// 0700), replacing any previous one in one rename.
func (m *cli) saveCredentials(c credentials) (string, error) {
	path, err := m.credentialsPath()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	raw, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return "", err
	}
	if err := client.WriteSecretFile(path, append(raw, '\n')); err != nil {
		return "", fmt.Errorf("write credentials: %w", err)
	}
	return path, nil
}

// serverURL is --url, else $KEYHUB_URL, else the stored URL, else the default.
func (m *cli) serverURL(stored credentials) string {
	for _, u := range []string{m.url, m.getenv("KEYHUB_URL"), stored.URL} {
		if u != "" {
			return u
		}
	}
	return defaultURL
}

// client builds the API client: the server from serverURL, the
// credential from $KEYHUB_API_KEY, $KEYHUB_TOKEN or the stored key.
func (m *cli) client() (*client.Client, error) {
	stored, err := m.loadCredentials()
	if err != nil {
		return nil, err
	}
	return m.clientWith(stored)
}

// clientWith is client with the stored credentials already read.
func (m *cli) clientWith(stored credentials) (*client.Client, error) {
	url := m.serverURL(stored)
	if _, err := client.New(url); err != nil {
		return nil, usageError{err.Error()}
	}
	key, token := m.credential(stored)
	switch {
	case key != "":
		return m.newClient(url, client.WithAPIKey(key))
	case token != "":
		return m.newClient(url, client.WithToken(token))
	}
	return nil, authError{"not logged in: run mk login, or set KEYHUB_API_KEY"}
}

// credential is what client authenticates with: $KEYHUB_API_KEY, else
// $KEYHUB_TOKEN, else the stored key (one of key and token, or neither).
func (m *cli) credential(stored credentials) (key, token string) {
	switch {
	case m.getenv("KEYHUB_API_KEY") != "":
		return m.getenv("KEYHUB_API_KEY"), ""
	case m.getenv("KEYHUB_TOKEN") != "":
		return "", m.getenv("KEYHUB_TOKEN")
	}
	return stored.APIKey, ""
}

func (m *cli) newClient(url string, opts ...client.Option) (*client.Client, error) {
	// The timeout bounds REST calls and WebSocket handshakes, not the
	// WebSocket itself.
	opts = append(opts, client.WithHTTPClient(&http.Client{Timeout: 30 * time.Second}), client.WithUserAgent("mk/"+mkVersion()))
	c, err := client.New(url, opts...)
	if err != nil {
		return nil, usageError{err.Error()}
	}
	return c, nil
}
