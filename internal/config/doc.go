package config

import (
	"bufio"
	"bytes"
	"strings"
)

// Variable is one setting as README.md's configuration table describes it.
type Variable struct {
	Name    string
	Default string
	Meaning string
}

// Documented reads the configuration table of README.md: the rows of the
// table under "## Configuration" whose first cell is a `NAME`. The README is
// the one description of the settings; a test keeps it equal to what Load
// reads, and `keyhub serve --help` prints it.
func Documented(readme []byte) []Variable {
	var vars []Variable
	inSection := false
	sc := bufio.NewScanner(bytes.NewReader(readme))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "## ") {
			inSection = line == "## Configuration"
			continue
		}
		if !inSection || !strings.HasPrefix(line, "| `") {
			continue
		}
		// An escaped \| inside a cell is not a cell boundary.
		row := strings.ReplaceAll(strings.Trim(line, "|"), `\|`, "\x00")
		cells := strings.Split(row, "|")
		if len(cells) < 3 {
			continue
		}
		vars = append(vars, Variable{
			Name:    strings.Trim(strings.TrimSpace(cells[0]), "`"),
			Default: plain(cells[1]),
			Meaning: plain(strings.Join(cells[2:], "|")),
		})
	}
	return vars
}

// plain strips a table cell's Markdown down to what a terminal shows well.
func plain(cell string) string {
	cell = strings.TrimSpace(cell)
	return strings.NewReplacer("`", "", "**", "", "\x00", "|").Replace(cell)
}
