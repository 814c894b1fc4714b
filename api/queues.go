package api

import (
	"context"
	"encoding/json"
	"sort"
	"strconv"
	"strings"

	hlog "github.com/heraldmq/herald/log"
	"github.com/heraldmq/herald/projection"
)

// CreateQueue creates queue with metadata (already validated as an
// object). It reports whether the queue is new; an existing queue keeps its
// metadata (contract M4).
func (s *Service) CreateQueue(ctx context.Context, c Caller, queue string, meta map[string]any) (bool, error) {
	if err := projection.ValidateMetadata(meta, s.limits()); err != nil {
		return false, BadRequest("%s", err.Error())
	}
	if flavor, ok := meta["_flavor"].(string); ok && flavor != "" {
		_, exists, err := s.QueueMetadata(ctx, c, queue)
		if err != nil {
			return false, err
		}
		if !exists {
			if err := s.placeQueue(ctx, c, queue, flavor); err != nil {
				return false, err
			}
		}
	}
	raw := []byte("{}")
	if len(meta) > 0 {
		raw = projection.EncodeJSON(meta)
	}
	ev, err := s.event(hlog.QueueCreated, c, queue, &hlog.QueueCreatedV1{Metadata: raw})
	if err != nil {
		return false, err
	}
	_, _, out, err := s.write(ctx, c, ev)
	if err != nil {
		return false, err
	}
	return out != nil && out.Status == 201, nil
}

func (s *Service) limits() projection.Limits {
	return projection.Limits{MaxMessageTTL: s.cfg.MaxMessageTTL, MaxMessagesPostSize: s.cfg.MaxMessagesPostSize, MaxMessageDelay: s.cfg.MaxMessageDelay}
}

// QueueMetadata returns the stored metadata of a queue ({} when the queue
// does not exist) and whether it exists.
func (s *Service) QueueMetadata(ctx context.Context, c Caller, queue string) (map[string]any, bool, error) {
	store, err := s.storeFor(ctx, c, queue)
	if err != nil {
		return nil, false, err
	}
	raw, exists, err := store.QueueMetadata(c.Project, queue)
	if err != nil {
		return nil, false, Unavailable("Queue metadata could not be retrieved.", err)
	}
	if !exists {
		return map[string]any{}, false, nil
	}
	m, err := projection.DecodeObject(raw)
	if err != nil {
		return nil, false, Unavailable("Queue metadata could not be retrieved.", err)
	}
	return m, true, nil
}

// QueueName is the name clients know a queue by: a topic's without the
// prefix of the queue that holds it.
func QueueName(queue string) string { return strings.TrimPrefix(queue, projection.TopicPrefix) }

// TopicQueue is the queue that holds topic name (see
// projection.TopicPrefix).
func TopicQueue(name string) string { return projection.TopicPrefix + name }

// WithTopicDefaults is WithReservedDefaults for a topic, whose metadata
// reports only the first three reserved keys (contract §2.8).
func (s *Service) WithTopicDefaults(meta map[string]any) map[string]any {
	out := s.WithReservedDefaults(meta)
	for _, k := range projection.ReservedKeys[3:] {
		if _, stored := meta[k]; !stored {
			delete(out, k)
		}
	}
	return out
}

// WithReservedDefaults returns a copy of meta with every reserved key whose
// stored value is missing or falsy set to its default (contract §2.2.3).
func (s *Service) WithReservedDefaults(meta map[string]any) map[string]any {
	out := make(map[string]any, len(meta)+len(projection.ReservedKeys))
	for k, v := range meta {
		out[k] = v
	}
	defaults := map[string]any{
		"_max_messages_post_size":         json.Number(itoa(s.cfg.MaxMessagesPostSize)),
		"_default_message_ttl":            json.Number(itoa(s.cfg.DefaultMessageTTL)),
		"_default_message_delay":          json.Number(itoa(s.cfg.DefaultMessageDelay)),
		"_dead_letter_queue":              nil,
		"_dead_letter_queue_messages_ttl": nil,
		"_max_claim_count":                nil,
		"_enable_encrypt_messages":        false,
	}
	for _, k := range projection.ReservedKeys {
		if !projection.Truthy(out[k]) {
			out[k] = defaults[k]
		}
	}
	return out
}

// PatchQueue applies JSON-patch operations (already validated for shape)
// to the queue's metadata and returns the resulting stored metadata.
func (s *Service) PatchQueue(ctx context.Context, c Caller, queue string, ops []hlog.PatchOp) (map[string]any, error) {
	ev, err := s.event(hlog.QueuePatched, c, queue, &hlog.QueuePatchedV1{Ops: ops,
		MaxMessageTTL: s.cfg.MaxMessageTTL, MaxPostSize: s.cfg.MaxMessagesPostSize, MaxDelay: s.cfg.MaxMessageDelay})
	if err != nil {
		return nil, err
	}
	_, _, out, err := s.write(ctx, c, ev)
	if err != nil {
		return nil, err
	}
	return projection.DecodeObject(out.Metadata)
}

// DeleteQueue deletes a queue with its messages and claims.
func (s *Service) DeleteQueue(ctx context.Context, c Caller, queue string) error {
	ev, err := s.event(hlog.QueueDeleted, c, queue, nil)
	if err != nil {
		return err
	}
	if _, _, _, err = s.write(ctx, c, ev); err != nil {
		return err
	}
	// A deleted queue leaves its pool: a new queue of the name is placed
	// anew, and the pool can be deleted once it holds no queue.
	placed, err := s.pools.primary.Store.Placement(c.Project, queue)
	if err != nil || placed == "" {
		return err
	}
	return s.placeOn(ctx, c, queue, "")
}

// PurgeQueue removes the queue's unclaimed messages and/or subscriptions.
func (s *Service) PurgeQueue(ctx context.Context, c Caller, queue string, messages, subscriptions bool) error {
	ev, err := s.event(hlog.QueuePurged, c, queue, &hlog.QueuePurgedV1{Messages: messages, Subscriptions: subscriptions})
	if err != nil {
		return err
	}
	_, _, _, err = s.write(ctx, c, ev)
	return err
}

// QueueListing selects queues for ListQueues.
type QueueListing struct {
	Marker    string
	Limit     int // 0: default 10
	Name      string
	Meta      map[string]any
	WithCount bool
	Topics    bool // list topics instead of queues
}

// ListQueues lists the caller's queues in name order.
func (s *Service) ListQueues(ctx context.Context, c Caller, l QueueListing) ([]projection.Queue, int, error) {
	if l.Limit == 0 {
		l.Limit = 10
	}
	if l.Limit < 1 || l.Limit > s.cfg.MaxQueuesPerPage {
		return nil, 0, BadRequest("Limit must be at least 1 and no greater than %d.", s.cfg.MaxQueuesPerPage)
	}
	replicas, err := s.pools.replicas(ctx)
	if err != nil {
		return nil, 0, err
	}
	// Every replica lists its queues in name order; the page is the first
	// Limit of their merge. A queue placed on a pool is never also on
	// another log, so nothing repeats.
	var all []projection.Queue
	total := 0
	for _, r := range replicas {
		f := projection.QueueFilter{Marker: l.Marker, Limit: l.Limit, Name: l.Name, Meta: l.Meta, Topics: l.Topics}
		qs, n, err := r.Store.ListQueues(c.Project, f, l.WithCount)
		if err != nil {
			return nil, 0, Unavailable("Queues could not be listed.", err)
		}
		all, total = append(all, qs...), total+n
	}
	if len(replicas) > 1 {
		sort.Slice(all, func(i, j int) bool { return all[i].Name < all[j].Name })
		all = all[:min(len(all), l.Limit)]
	}
	return all, total, nil
}

// QueueStats counts the queue's messages now.
func (s *Service) QueueStats(ctx context.Context, c Caller, queue string) (projection.Stats, error) {
	store, err := s.storeFor(ctx, c, queue)
	if err != nil {
		return projection.Stats{}, err
	}
	st, err := store.QueueStats(c.Project, queue, s.Now())
	if err != nil {
		return st, Unavailable("Queue stats could not be read.", err)
	}
	return st, nil
}

// ParsePatch validates a queue JSON-patch document (contract §2.2.4 step 4)
// and returns its operations.
func ParsePatch(doc []any) ([]hlog.PatchOp, *Error) {
	ops := make([]hlog.PatchOp, 0, len(doc))
	for _, e := range doc {
		m, ok := e.(map[string]any)
		if !ok {
			return nil, BadBody("Operations must be JSON objects.")
		}
		op, _ := m["op"].(string)
		if op != "add" && op != "remove" && op != "replace" {
			return nil, BadBody("The operation must be one of: add, remove, replace.")
		}
		rawPath, present := m["path"]
		if !present {
			return nil, BadBody("Missing path in operation.")
		}
		path, ok := rawPath.(string)
		if !ok {
			return nil, BadBody("The path must be a string.")
		}
		tokens, perr := pointerTokens(path)
		if perr != nil {
			return nil, perr
		}
		if len(tokens) != 2 {
			return nil, BadBody("Invalid path: %s. The path must have exactly two parts.", path)
		}
		p := hlog.PatchOp{Op: op, Key: tokens[1]}
		if op != "remove" {
			if !strings.EqualFold(tokens[0], "metadata") {
				return nil, BadBody("The root of the path must be metadata, e.g /metadata/key.")
			}
			v, present := m["value"]
			if !present {
				return nil, BadBody("Operation %q requires a member named \"value\".", op)
			}
			p.Value = projection.EncodeJSON(v)
		}
		ops = append(ops, p)
	}
	return ops, nil
}

func pointerTokens(path string) ([]string, *Error) {
	invalid := BadBody("Invalid JSON pointer for this resource: '%s'.", path)
	if !strings.HasPrefix(path, "/") || strings.Contains(path, "//") || strings.HasSuffix(path, "/") {
		return nil, invalid
	}
	for i := 0; i < len(path); i++ {
		if path[i] == '~' && (i+1 >= len(path) || (path[i+1] != '0' && path[i+1] != '1')) {
			return nil, invalid
		}
	}
	parts := strings.Split(path[1:], "/")
	for i, p := range parts {
		p = strings.ReplaceAll(strings.ReplaceAll(p, "~1", "/"), "~0", "~")
		parts[i] = strings.TrimSpace(p)
	}
	return parts, nil
}

func itoa(i int64) string {
	return json.Number(strconvI(i)).String()
}

func strconvI(i int64) string { return strconv.FormatInt(i, 10) }
