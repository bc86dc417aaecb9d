package httpapi

// DevEmail is devEmail, for the external tests that hold openapi.yaml
// to it.
var DevEmail = devEmail
