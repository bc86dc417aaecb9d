// Package db exports the goose migrations to the binary; //go:embed cannot
// reach a parent folder, so the embed lives next to them.
package db

import "embed"

// Migrations holds db/migrations/*.sql, applied by goose.
//
//go:embed migrations/*.sql
var Migrations embed.FS
