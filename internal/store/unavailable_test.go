package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
)

type sqlState string

func (s sqlState) Error() string    { return "pg: " + string(s) }
func (s sqlState) SQLState() string { return string(s) }

func TestUnavailable(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("syntax error"), false},
		{ErrNotFound, false},
		{ErrConflict, false},
		{sqlState("23505"), false}, // unique violation: a real answer
		{fmt.Errorf("wrapped: %w", sqlState("57P01")), true},
		{sqlState("08006"), true},
		{sqlState("53300"), true},
		{sqlState("55P03"), true},
		{sqlState("57014"), true},
		{driver.ErrBadConn, true},
		{&net.OpError{Op: "dial", Err: errors.New("connection refused")}, true},
		{io.ErrUnexpectedEOF, true},
		{fmt.Errorf("commit: %w", context.DeadlineExceeded), true},
		{errors.New("conn closed"), true},
	} {
		if got := Unavailable(tc.err); got != tc.want {
			t.Errorf("Unavailable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
