package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"
)

// Unavailable reports whether err means the database could not be reached or refused the work for
// now (connection lost or refused, server shutting down or restarting, too many connections, a lock
// or statement deadline): the request may be retried shortly. Callers answer 503 with Retry-After
// for these instead of a server fault. It knows no driver: PostgreSQL errors are recognised by
// their SQLSTATE.
func Unavailable(err error) bool {
	if err == nil {
		return false
	}
	var sqlState interface{ SQLState() string }
	if errors.As(err, &sqlState) {
		code := sqlState.SQLState()
		switch {
		case strings.HasPrefix(code, "08"), // connection exception
			code == "57P01", code == "57P02", code == "57P03", // admin shutdown, crash shutdown, cannot connect now
			code == "53300",                  // too many connections
			code == "55P03", code == "57014": // lock_timeout, statement_timeout
			return true
		}
		return false
	}
	var netErr net.Error
	return errors.Is(err, driver.ErrBadConn) || errors.As(err, &netErr) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "conn closed")
}
