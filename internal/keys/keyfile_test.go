package keys_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/pkg/client"
	"github.com/zitadel/oidc/v3/pkg/client/profile"

	"github.com/signet-id/signet/internal/keys"
	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/testenv"
)

// TestKeyFilesWorkWithZitadel: a key file of each algorithm, as Signet hands it to a service account,
// is read by zitadel/oidc's own loader, and zitadel's JWT-profile token source gets a token with it
// from a running Signet; the token is the service account's.
func TestKeyFilesWorkWithZitadel(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	sa := env.CreateServiceAccount("ci-bot")
	api := env.CreateClient(store.Client{Name: "billing-api"})
	for _, alg := range []string{keys.RS256, keys.ES256, keys.EdDSA} {
		t.Run(alg, func(t *testing.T) {
			kf, path := env.KeyFile(store.KindServiceAccount, sa.ID, alg, time.Time{})
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if parsed, err := keys.ParseKeyFile(b); err != nil || parsed.Subject() != sa.ID {
				t.Fatalf("Signet cannot read its own key file: %v", err)
			}
			zf, err := client.ConfigFromKeyFile(path)
			if err != nil {
				t.Fatalf("zitadel cannot read the key file: %v", err)
			}
			if zf.UserID != sa.ID || zf.KeyID != kf.KeyID {
				t.Fatalf("zitadel reads user %q key %q, want %q %q", zf.UserID, zf.KeyID, sa.ID, kf.KeyID)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			ts, err := profile.NewJWTProfileTokenSourceFromKeyFileData(ctx, env.URL, b, []string{"openid", "urn:zitadel:iam:org:project:id:" + api.ID + ":aud"})
			if err != nil {
				t.Fatalf("zitadel's profile package cannot load the key file: %v", err)
			}
			tok, err := ts.Token()
			if err != nil {
				t.Fatalf("Signet refuses zitadel's %s assertion: %v", alg, err)
			}
			code, info := env.PostForm("/oauth/v2/introspect", map[string]string{"token": tok.AccessToken}, api.ID, api.Secret)
			if code != 200 || info["active"] != true || info["sub"] != sa.ID {
				t.Fatalf("the token must be the service account's: %d %v", code, info)
			}
		})
	}
}
