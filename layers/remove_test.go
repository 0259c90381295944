package layers_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/unionfsd/unionfsd/layers"
	"github.com/unionfsd/unionfsd/layers/imagetest"
)

// TestPlanRemovalAndKeep: all names of an image given together delete it;
// layers in the keep set survive the deletion of their last image.
func TestPlanRemovalAndKeep(t *testing.T) {
	src := filepath.Join(t.TempDir(), "layout")
	if err := imagetest.WriteOCILayout(src, oneLayer(imagetest.File("f", "data", 0o644))); err != nil {
		t.Fatal(err)
	}
	s := openStore(t)
	for _, n := range []string{"a:1", "b:1"} {
		if _, err := s.Import(src, layers.ImportOptions{Name: n}); err != nil {
			t.Fatal(err)
		}
	}
	img, err := s.Image("a:1")
	if err != nil || len(img.Names) != 2 {
		t.Fatalf("setup: %v %v", img, err)
	}
	for _, tc := range []struct {
		refs    []string
		deleted bool
	}{
		{[]string{"a:1"}, false},
		{[]string{"a:1", "a:1"}, false},
		{[]string{"a:1", "b:1"}, true},
		{[]string{"b:1", img.ID.Encoded()[:8]}, true},
		{[]string{img.ID.String()}, true},
	} {
		plan, err := s.PlanRemoval(tc.refs)
		if err != nil || len(plan) != 1 || plan[0].ID != img.ID || plan[0].Deleted != tc.deleted {
			t.Errorf("PlanRemoval(%q) = %+v, %v; want deleted=%v", tc.refs, plan, err, tc.deleted)
		}
	}
	if _, err := s.PlanRemoval([]string{"a:1", "nosuch:1"}); err == nil {
		t.Errorf("PlanRemoval of a missing image: no error")
	}
	chain := img.Layers[0].ChainID
	keep := map[string]bool{chain.Encoded(): true}
	if _, err := s.RemoveKeeping("a:1", keep); err != nil {
		t.Fatal(err)
	}
	res, err := s.RemoveKeeping("b:1", keep)
	if err != nil || res.Deleted != img.ID || len(res.DeletedLayers) != 0 {
		t.Fatalf("RemoveKeeping of the last name: %+v %v", res, err)
	}
	if _, err := os.Stat(s.LayerDir(chain)); err != nil {
		t.Errorf("kept layer deleted: %v", err)
	}
}
