// Package keyhub, at the module root, only embeds openapi.yaml so that the
// binary serves the same contract the repository documents.
package keyhub

import _ "embed"

// OpenAPI is the API description, served at GET /openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPI []byte
