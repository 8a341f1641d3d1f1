package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/signet-id/signet/internal/keys"
	"github.com/signet-id/signet/internal/secrets"
	"github.com/signet-id/signet/internal/store"
)

// adminSetting marks that the first-run admin exists, so a deleted admin is not silently recreated.
const adminSetting = "bootstrap_admin"

// FirstRun is what Bootstrap created, for the start-up banner.
type FirstRun struct {
	SigningKeyCreated bool
	AdminUsername     string
	AdminPassword     string // empty unless created now; shown once
}

// Bootstrap makes a fresh database usable: a signing key for the default algorithm and, once, an
// admin user with a generated password. Running it again changes nothing.
func (s *Server) Bootstrap(ctx context.Context) (*FirstRun, error) {
	fr := &FirstRun{}
	created, err := s.Keys.Ensure(ctx, s.Config.SigningAlg)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	fr.SigningKeyCreated = created
	// OpenID Connect providers must be able to sign ID tokens with RS256 (OIDC Core §15.1), and
	// relying parties that name no algorithm expect it: keep an RS256 key beside the default one.
	if _, err := s.Keys.Ensure(ctx, keys.RS256); err != nil {
		return nil, fmt.Errorf("RS256 signing key: %w", err)
	}
	if err := s.Store.PutSetting(ctx, issuerSetting, s.Config.Issuer); err != nil {
		return nil, err
	}
	name, err := s.Store.GetSetting(ctx, adminSetting)
	if err == nil {
		fr.AdminUsername = name
		return fr, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	password := secrets.RandomString(18)
	now := time.Now()
	admin := &store.User{
		ID: secrets.NewID(), Username: "admin", DisplayName: "Signet administrator",
		PasswordHash: secrets.HashPassword(password), Roles: []string{"admin"}, CreatedAt: now, UpdatedAt: now,
		// The printed password has been on a terminal and in logs: the first sign-in replaces it.
		PasswordChangeRequired: true,
	}
	if err := s.Store.CreateUser(ctx, admin); errors.Is(err, store.ErrConflict) {
		// Another replica starting at the same moment created it (and prints its password).
		fr.AdminUsername = admin.Username
		return fr, s.Store.PutSetting(ctx, adminSetting, admin.Username)
	} else if err != nil {
		return nil, fmt.Errorf("create admin user: %w", err)
	}
	if err := s.Store.PutSetting(ctx, adminSetting, admin.Username); err != nil {
		return nil, err
	}
	fr.AdminUsername, fr.AdminPassword = admin.Username, password
	return fr, nil
}
