package tests

import "testing"

func TestSmokePostAndClaim(t *testing.T) {
	backends(t, func(t *testing.T, n *node) {
		c := newClient(t, n)
		c.put("/v2/queues/smoke", nil).expect(t, 201)
		ids := c.postMessages("smoke", msg(map[string]any{"n": 1}), msg("two"))
		if len(ids) != 2 {
			t.Fatalf("ids %v", ids)
		}
		r := c.post("/v2/queues/smoke/claims", map[string]any{}).expect(t, 201)
		if got := len(r.JSON(t)["messages"].([]any)); got != 2 {
			t.Fatalf("claimed %d", got)
		}
	})
}
