package sqlite

import (
	"database/sql"
	"io/fs"

	"github.com/pressly/goose/v3"
)

// Migrations returns a goose provider over this backend's embedded migrations on db, to bring a
// database to an older schema and test upgrades from it.
func Migrations(db *sql.DB) (*goose.Provider, error) {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	return goose.NewProvider(goose.DialectSQLite3, db, sub)
}
