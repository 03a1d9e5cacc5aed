package metadata

import "testing"

func TestCompactionConfigKeys(t *testing.T) {
	for _, c := range []struct {
		key, in, want string
		ok            bool
	}{
		{ConfigCleanupPolicy, "compact", "compact", true},
		{ConfigCleanupPolicy, "delete", "delete", true},
		{ConfigCleanupPolicy, "delete,compact", "compact,delete", true},
		{ConfigCleanupPolicy, "compact,delete", "compact,delete", true},
		{ConfigCleanupPolicy, "compact, delete", "", false},
		{ConfigCleanupPolicy, "", "", false},
		{ConfigMinCleanableDirtyRatio, "0.5", "0.5", true},
		{ConfigMinCleanableDirtyRatio, "0.50", "0.5", true},
		{ConfigMinCleanableDirtyRatio, "1", "1", true},
		{ConfigMinCleanableDirtyRatio, "0", "0", true},
		{ConfigMinCleanableDirtyRatio, "1.01", "", false},
		{ConfigMinCleanableDirtyRatio, "-0.1", "", false},
		{ConfigMinCleanableDirtyRatio, "NaN", "", false},
		{ConfigMinCleanableDirtyRatio, "5e-1", "", false},
		{ConfigMinCleanableDirtyRatio, "0x1p-1", "", false},
		{ConfigMinCompactionLagMs, "0", "0", true},
		{ConfigMinCompactionLagMs, "-1", "", false},
		{ConfigMaxCompactionLagMs, "0", "", false},
		{ConfigMaxCompactionLagMs, "60000", "60000", true},
		{ConfigDeleteRetentionMs, "86400000", "86400000", true},
		{ConfigDeleteRetentionMs, "-1", "", false},
	} {
		got, err := normalizeConfig(c.key, c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("%s=%q: %q, %v; want %q (ok %v)", c.key, c.in, got, err, c.want, c.ok)
		}
		if c.ok {
			// The normal form is its own normal form.
			if again, err := normalizeConfig(c.key, got); err != nil || again != got {
				t.Errorf("%s=%q: normal form %q is not stable: %q, %v", c.key, c.in, got, again, err)
			}
		}
	}
}
