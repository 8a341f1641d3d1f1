package oauth_test

import (
	"encoding/base64"
	"net/url"
)

func basic(id, secret string) string {
	return base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id) + ":" + url.QueryEscape(secret)))
}

func urlEscape(s string) string { return url.QueryEscape(s) }
