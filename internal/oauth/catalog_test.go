package oauth

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// constructors are the functions whose format argument is an error_description.
var constructors = map[string]int{ // name → index of the format argument
	"InvalidRequest": 0, "InvalidClient": 0, "InvalidGrant": 0, "UnauthorizedClient": 0,
	"UnsupportedGrantType": 0, "InvalidScope": 0, "InvalidTarget": 0, "AccessDenied": 0,
	"UnsupportedTokenType": 0, "TemporarilyUnavailable": 0, "InvalidToken": 0, "fail": 0,
	"UnsupportedResponseType": 0, "RequestNotSupported": 0, "RequestURINotSupported": 0, "RegistrationNotSupported": 0,
	"RateLimited": 1, "refuse": 1,
	"LoginRequired": 0, "ConsentRequired": 0, "InteractionRequired": 0, "AccountSelectionRequired": 0,
}

// descriptions returns every literal error_description format in the non-test Go files under root.
func descriptions(t *testing.T, root string) map[string]string {
	t.Helper()
	found := map[string]string{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			var name string
			switch fn := call.Fun.(type) {
			case *ast.Ident:
				name = fn.Name
			case *ast.SelectorExpr:
				name = fn.Sel.Name
			}
			idx, ok := constructors[name]
			if !ok || len(call.Args) <= idx {
				return true
			}
			lit, ok := call.Args[idx].(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				t.Errorf("%s: %s must get a literal format so the catalog can list it", fset.Position(call.Pos()), name)
				return true
			}
			s, _ := strconv.Unquote(lit.Value)
			found[s] = fset.Position(call.Pos()).String()
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// TestErrorCatalogListsEveryDescription keeps docs/errors.md complete: every description a caller
// can receive is documented with its cause and fix.
func TestErrorCatalogListsEveryDescription(t *testing.T) {
	doc, err := os.ReadFile("../../docs/errors.md")
	if err != nil {
		t.Fatal(err)
	}
	found := descriptions(t, "../")
	if len(found) < 40 {
		t.Fatalf("found only %d descriptions; the scan is broken", len(found))
	}
	for desc, pos := range found {
		if !strings.Contains(string(doc), desc) {
			t.Errorf("%s: description not in docs/errors.md:\n%s", pos, desc)
		}
	}
	if !strings.Contains(string(doc), ServerError(nil).Description) {
		t.Errorf("server_error description not in docs/errors.md")
	}
}
