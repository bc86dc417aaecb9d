package client_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/keyhub/keyhub/api/client"
)

// A new key is written with mode 0600, replacing the old one whole; a key
// file that is a symbolic link is written where it points and stays a link
// (a mounted secret must not turn into a stray copy beside the link).
func TestWriteSecretFile(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "daemon.key")
	if err := os.WriteFile(plain, []byte("mk_old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := client.WriteSecretFile(plain, []byte("mk_new")); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(plain); string(got) != "mk_new" {
		t.Fatalf("content %q", got)
	}
	if fi, _ := os.Stat(plain); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
	}

	secrets := filepath.Join(dir, "secrets")
	if err := os.Mkdir(secrets, 0o700); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(secrets, "key")
	if err := os.WriteFile(target, []byte("mk_old"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "linked.key")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := client.WriteSecretFile(link, []byte("mk_new")); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the link was replaced by a file (%v)", err)
	}
	if got, _ := os.ReadFile(target); string(got) != "mk_new" {
		t.Fatalf("the link's target holds %q", got)
	}
}
