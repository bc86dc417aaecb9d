// Package docs, at the module root, only embeds the documents the binary
// serves or prints: openapi.yaml, so that it serves the same contract the
// repository documents, and README.md, whose configuration table is the
// one description of the settings (`keyhub serve --help` prints it). It is
// not named after the module: the domain, internal/keyhub, is package
// keyhub, and both are imported side by side.
package docs

import _ "embed"

// OpenAPI is the API description, served at GET /openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPI []byte

// Readme is README.md.
//
//go:embed README.md
var Readme []byte
