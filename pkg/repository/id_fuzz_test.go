package repository_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ckpt-dev/ckpt/pkg/repository"
)

// FuzzValidateID checks that no id ValidateID accepts can name anything but
// a direct child of the repository, and that Slug always yields a valid id
// prefix.
func FuzzValidateID(f *testing.F) {
	for _, s := range []string{"nightly-abcdefghijkl", "..", "../x", "a/b", "", ".hidden", "UPPER", "ünï", "a\x00b", "-", "_", "a.b", strings.Repeat("a", 129)} {
		f.Add(s)
	}
	root := "/repo"
	f.Fuzz(func(t *testing.T, id string) {
		err := repository.ValidateID(id)
		if err != nil {
			if !errors.Is(err, repository.ErrInvalidID) {
				t.Fatalf("ValidateID(%q) = %v, not ErrInvalidID", id, err)
			}
		} else {
			p := filepath.Join(root, id)
			if filepath.Dir(p) != root || filepath.Base(p) != id || len(id) > repository.MaxIDLen {
				t.Fatalf("accepted id %q names %s, not a child of %s", id, p, root)
			}
		}
		s := repository.Slug(id)
		if err := repository.ValidateID(s + "-abcdefghijkl"); err != nil {
			t.Fatalf("Slug(%q) = %q is not a valid prefix: %v", id, s, err)
		}
		if len(s) > repository.MaxPrefixLen {
			t.Fatalf("Slug(%q) = %q is longer than %d", id, s, repository.MaxPrefixLen)
		}
	})
}
