package client

import (
	"context"
	"errors"
	"fmt"
	"slices"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
)

// TopicConfig is one config key of a topic as the broker applies it.
type TopicConfig struct {
	Name  string
	Value string
	// IsDefault: the topic sets nothing for the key; Value is the default.
	IsDefault bool
	// ReadOnly: AlterConfigs refuses to change it (partitions grows
	// through CreatePartitions; replication.factor is fixed).
	ReadOnly bool
}

// TopicConfigs is every config key of one topic, in key order.
type TopicConfigs struct {
	Topic   string
	Configs []TopicConfig
}

// DescribeConfigs returns every config key of the named topics (none:
// every topic) with its value and whether it is the default. A topic that
// does not exist fails the call, named in the error.
func (a *Admin) DescribeConfigs(ctx context.Context, topics ...string) ([]TopicConfigs, error) {
	req := &fb.DescribeConfigsRequestT{}
	if len(topics) > 0 {
		req.Topics = topics
	}
	build := func(b *flatbuffers.Builder) (fb.Message, flatbuffers.UOffsetT) {
		return fb.MessageDescribeConfigsRequest, req.Pack(b)
	}
	var out []TopicConfigs
	var errs []error
	err := a.cl.request(ctx, fb.ApiKeyDescribeConfigs, build, func(env *schema.Envelope) error {
		r, err := env.DescribeConfigsResponse()
		if err != nil {
			return err
		}
		for i, t := range r.UnPack().Topics {
			if t.ErrorCode != fb.ErrorCodeNone {
				name := answeredName(t.Name, i, len(topics), func(i int) string { return topics[i] })
				errs = append(errs, fmt.Errorf("describe configs of topic %q: %w", name, adminErr(name, t.ErrorCode, t.ErrorMessage)))
				continue
			}
			tc := TopicConfigs{Topic: t.Name}
			for _, c := range t.Configs {
				tc.Configs = append(tc.Configs, TopicConfig{Name: c.Name, Value: c.Value, IsDefault: c.IsDefault, ReadOnly: c.ReadOnly})
			}
			out = append(out, tc)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(x, y TopicConfigs) int {
		switch {
		case x.Topic < y.Topic:
			return -1
		case x.Topic > y.Topic:
			return 1
		}
		return 0
	})
	return out, errors.Join(errs...)
}

// ConfigChange is one topic's config change: keys to set and keys to
// return to their defaults. The broker applies it all or not at all.
type ConfigChange struct {
	Topic  string
	Set    map[string]string
	Delete []string
}

// AlterConfigs applies each topic's change (IncrementalAlterConfigs); with
// validateOnly the broker checks the changes and applies none. The error
// joins each topic's failure (INVALID_CONFIG names the key).
func (a *Admin) AlterConfigs(ctx context.Context, validateOnly bool, changes ...ConfigChange) error {
	req := &fb.IncrementalAlterConfigsRequestT{TimeoutMs: adminTimeoutMsDefault, ValidateOnly: validateOnly}
	for _, c := range changes {
		t := &fb.AlterConfigsTopicT{Name: c.Topic}
		keys := make([]string, 0, len(c.Set))
		for k := range c.Set {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			t.Configs = append(t.Configs, &fb.AlterableConfigT{Name: k, Op: fb.AlterConfigOpSet, Value: c.Set[k]})
		}
		for _, k := range c.Delete {
			t.Configs = append(t.Configs, &fb.AlterableConfigT{Name: k, Op: fb.AlterConfigOpDelete})
		}
		req.Topics = append(req.Topics, t)
	}
	build := func(b *flatbuffers.Builder) (fb.Message, flatbuffers.UOffsetT) {
		return fb.MessageIncrementalAlterConfigsRequest, req.Pack(b)
	}
	var errs []error
	err := a.cl.request(ctx, fb.ApiKeyIncrementalAlterConfigs, build, func(env *schema.Envelope) error {
		r, err := env.IncrementalAlterConfigsResponse()
		if err != nil {
			return err
		}
		for i, t := range r.UnPack().Topics {
			if t.ErrorCode != fb.ErrorCodeNone {
				name := answeredName(t.Name, i, len(changes), func(i int) string { return changes[i].Topic })
				errs = append(errs, fmt.Errorf("alter configs of topic %q: %w", name, adminErr(name, t.ErrorCode, t.ErrorMessage)))
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return errors.Join(errs...)
}

// CreatePartitions grows a topic to count partitions; with validateOnly
// the broker checks and adds none. A count at or below the topic's is
// INVALID_PARTITIONS. This client's producers see the new count at once;
// others at their next metadata refresh (at the latest MetadataMaxAgeMs).
func (a *Admin) CreatePartitions(ctx context.Context, topic string, count int32, validateOnly bool) error {
	req := &fb.CreatePartitionsRequestT{TimeoutMs: adminTimeoutMsDefault, ValidateOnly: validateOnly,
		Topics: []*fb.CreatePartitionsTopicT{{Name: topic, Count: count}}}
	build := func(b *flatbuffers.Builder) (fb.Message, flatbuffers.UOffsetT) {
		return fb.MessageCreatePartitionsRequest, req.Pack(b)
	}
	var errs []error
	err := a.cl.request(ctx, fb.ApiKeyCreatePartitions, build, func(env *schema.Envelope) error {
		r, err := env.CreatePartitionsResponse()
		if err != nil {
			return err
		}
		for _, t := range r.UnPack().Topics {
			if t.ErrorCode != fb.ErrorCodeNone {
				errs = append(errs, fmt.Errorf("add partitions to topic %q: %w", topic, adminErr(topic, t.ErrorCode, t.ErrorMessage)))
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(errs) == 0 {
		// This client's producers place records over the new count from
		// now on: the broker answered once it serves the new partitions.
		if _, err := a.cl.fetchMetadata(ctx, []string{topic}); err != nil {
			a.cl.invalidate(topic)
		}
	}
	return errors.Join(errs...)
}
