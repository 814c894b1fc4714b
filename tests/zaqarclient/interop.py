#!/usr/bin/env python3
"""Drive a running Herald with the real python-zaqarclient (v2 API).

Usage: interop.py HERALD_URL POOL_DIR

HERALD_URL is a Herald started with --admin-mode and a signed-URL key;
POOL_DIR is an empty directory the script may place a pool's log in.
Every check prints one line; the first failure prints its traceback and
exits non-zero. The last line is "N passed, 0 failed".

Only the standard library and zaqarclient (Debian: python3-zaqarclient)
are used. tests/zaqarclient_test.go runs this script.
"""

import os
import re
import sys
import traceback
import uuid

from zaqarclient.queues.v2 import client as zaqar
from zaqarclient.queues.v2 import core
from zaqarclient.queues.v2 import message as zmessage
from zaqarclient.transport import errors

RESERVED = {
    '_max_messages_post_size': 262144,
    '_default_message_ttl': 3600,
    '_default_message_delay': 0,
    '_dead_letter_queue': None,
    '_dead_letter_queue_messages_ttl': None,
    '_max_claim_count': None,
    '_enable_encrypt_messages': False,
}


class AdminClient(zaqar.Client):
    """A client whose requests carry the admin role.

    With Keystone the role comes from the token; the noauth backend has no
    option for it, so this client adds the header a trusting deployment
    reads (contract §1.3, §3.13).
    """

    def _request_and_transport(self):
        req, trans = super()._request_and_transport()
        req.headers['X-Roles'] = 'admin'
        return req, trans


def noauth_conf(project):
    return {'auth_opts': {'backend': 'noauth',
                          'options': {'os_project_id': project}}}


def claimed_ids(claim):
    """Ids of the messages of a claim read back with GET.

    Claim._get of client 2.4.0 builds v1 Message objects, which keep the
    id in `_id` (v2 messages have `id`).
    """
    return sorted(m._id for m in claim)


def dir_bytes(path):
    return sum(os.path.getsize(os.path.join(d, f))
               for d, _, files in os.walk(path) for f in files)


def run_checks(t, checks):
    """Runs each check on t, printing one line per check and the summary
    line; exits 1 with the traceback at the first failure."""
    passed = 0
    for check in checks:
        try:
            check(t)
        except Exception:
            traceback.print_exc(file=sys.stdout)
            print('FAIL %s: %s' % (check.__name__, check.__doc__))
            print('%d passed, 1 failed' % passed)
            sys.stdout.flush()
            sys.exit(1)
        passed += 1
        print('ok   %-28s %s' % (check.__name__, check.__doc__))
        sys.stdout.flush()
    print('%d passed, 0 failed' % passed)


def raises(exc, fn, *args, **kwargs):
    """Calls fn and returns the exception of type exc it must raise."""
    try:
        fn(*args, **kwargs)
    except exc as e:
        return e
    raise AssertionError('%s did not raise %s' % (fn, exc.__name__))


class Interop:
    def __init__(self, url, pool_dir):
        self.url = url
        self.pool_dir = pool_dir
        self.project = 'interop-' + uuid.uuid4().hex[:12]
        # Two clients of one project: listing hides a client's own
        # messages unless echo is asked for (contract §3.4).
        self.cli = zaqar.Client(url, version=2, conf=noauth_conf(self.project))
        self.peer = zaqar.Client(url, version=2, conf=noauth_conf(self.project))
        self.admin = AdminClient(url, version=2, conf=noauth_conf(self.project))

    def run(self):
        run_checks(self, CHECKS)

    def queue(self, name, client=None):
        return (client or self.cli).queue(name, auto_create=False)

    def post(self, queue, *bodies, ttl=None):
        msgs = [{'body': b} if ttl is None else {'body': b, 'ttl': ttl}
                for b in bodies]
        res = queue.post(msgs)
        hrefs = res['resources']
        assert len(hrefs) == len(bodies), res
        return [h.rsplit('/', 1)[-1] for h in hrefs]


CHECKS = []


def check(fn):
    CHECKS.append(fn)
    return fn


# ---- ping and health -------------------------------------------------

@check
def ping(t):
    """client.ping() is True"""
    assert t.cli.ping() is True, 'ping failed'


@check
def health(t):
    """client.health() needs the admin role and reports reachable storage"""
    raises(errors.ForbiddenError, t.cli.health)
    doc = t.admin.health()
    assert doc['storage_reachable'] is True, doc
    for op, st in doc['operation_status'].items():
        assert st['succeeded'] is True, (op, st)
    assert set(doc['message_volume']) >= {'free', 'claimed', 'total'}, doc


@check
def homedoc(t):
    """client.homedoc() is the JSON-Home document, admin routes included"""
    res = t.cli.homedoc()['resources']
    for rel, r in res.items():
        href = r.get('href-template', r.get('href'))
        assert href.startswith('/v2/'), (rel, href)
    assert {'rel/queues', 'rel/messages', 'rel/pools', 'rel/health'} <= set(res), sorted(res)


# ---- queues ----------------------------------------------------------

@check
def queue_create(t):
    """queue(force_create=True) creates; a second create is fine"""
    t.cli.queue('interop-q', force_create=True)
    t.cli.queue('interop-q', force_create=True)
    names = [q.name for q in t.cli.queues()[0]]
    assert names == ['interop-q'], names


@check
def queue_metadata_get(t):
    """metadata() of a new queue shows the seven reserved defaults"""
    meta = t.queue('interop-q').metadata()
    assert meta == RESERVED, meta


@check
def queue_metadata_update(t):
    """metadata(new_meta=...) sends replace, add and remove operations"""
    q = t.queue('interop-q')
    # replace _default_message_ttl (shown non-null), add color, and remove
    # the six other reserved keys, none of them stored (contract M5).
    meta = q.metadata(new_meta={'color': 'blue', '_default_message_ttl': 300})
    want = dict(RESERVED, color='blue', _default_message_ttl=300)
    assert meta == want, meta
    assert q.metadata(force_reload=True) == want
    # The stored TTL is the default of new messages.
    [mid] = t.post(q, 'ttl from metadata')
    assert q.message(mid).ttl == 300, q.message(mid).ttl
    # replace a stored user key, add another, remove the stored TTL.
    meta = q.metadata(new_meta={'color': 'red', 'size': 3})
    want = dict(RESERVED, color='red', size=3)
    assert meta == want, meta
    assert q.metadata(force_reload=True) == want


@check
def queue_list_paging(t):
    """queues(limit=2, with_count=True) pages through every queue"""
    for i in range(5):
        t.cli.queue('interop-list-%d' % i, force_create=True)
    want = sorted(['interop-q'] + ['interop-list-%d' % i for i in range(5)])
    it, count = t.cli.queues(limit=2, with_count=True)
    assert count == len(want), count
    first = [q.name for q in it]
    assert first == want[:2], first
    it, _ = t.cli.queues(limit=2, with_count=True)
    names = [q.name for q in it.stream()]
    assert names == want, names
    it, count = t.cli.queues()
    assert count is None, count


@check
def queue_list_detailed(t):
    """queues(detailed=True) carries each queue's metadata"""
    it, _ = t.cli.queues(detailed=True, name='interop-q')
    queues = {q.name: q for q in it}
    assert list(queues) == ['interop-q'], list(queues)
    meta = queues['interop-q'].metadata()
    assert meta['color'] == 'red' and meta['size'] == 3, meta


@check
def queue_stats(t):
    """queue.stats counts free and claimed messages"""
    q = t.cli.queue('interop-stats', force_create=True)
    stats = q.stats['messages']
    assert stats == {'claimed': 0, 'free': 0, 'total': 0}, stats
    t.post(q, 1, 2, 3)
    q.claim(ttl=60, grace=60, limit=1)
    stats = q.stats['messages']
    assert (stats['claimed'], stats['free'], stats['total']) == (1, 2, 3), stats
    for end in ('oldest', 'newest'):
        assert stats[end]['href'].startswith('/v2/queues/interop-stats/messages/'), stats
        assert stats[end]['created'].endswith('Z'), stats


@check
def queue_delete(t):
    """queue.delete() removes the queue and its messages"""
    q = t.queue('interop-stats')
    q.delete()
    names = [x.name for x in t.cli.queues(limit=20)[0]]
    assert 'interop-stats' not in names, names
    assert q.stats['messages']['total'] == 0, q.stats
    q.delete()  # idempotent


@check
def queue_purge(t):
    """queue.purge() drops messages and subscriptions, or only the types named"""
    q = t.cli.queue('interop-purge', force_create=True)
    t.post(q, 'a', 'b')
    t.cli.subscription('interop-purge', subscriber='http://127.0.0.1:9/purge', ttl=3600)
    q.purge(resource_types=['messages'])
    assert list(q.messages(echo=True)) == []
    assert len(list(q.subscriptions())) == 1
    t.post(q, 'c')
    q.purge()
    assert list(q.messages(echo=True)) == []
    assert list(q.subscriptions()) == []


# ---- messages --------------------------------------------------------

@check
def message_post_and_list(t):
    """post() then messages(): own messages only with echo=True"""
    q = t.cli.queue('interop-msgs', force_create=True)
    bodies = [{'event': 'created', 'n': 1}, [1, 2, 3], 'text', None]
    ids = t.post(q, *bodies, ttl=600)
    t.msg_ids = ids
    assert list(q.messages()) == [], 'own messages listed without echo'
    got = list(q.messages(echo=True))
    assert [m.id for m in got] == ids, got
    assert [m.body for m in got] == bodies, [m.body for m in got]
    for m in got:
        assert m.ttl == 600 and m.age >= 0, m
        assert m.href == '/v2/queues/interop-msgs/messages/' + m.id, m.href
    peer = list(t.queue('interop-msgs', t.peer).messages())
    assert [m.id for m in peer] == ids, peer


@check
def message_list_paging(t):
    """messages(echo=True, limit=3).stream() follows next links"""
    q = t.queue('interop-msgs')
    more = t.post(q, *range(7))
    t.msg_ids += more
    first = list(q.messages(echo=True, limit=3))
    assert [m.id for m in first] == t.msg_ids[:3], first
    got = [m.id for m in q.messages(echo=True, limit=3).stream()]
    assert got == t.msg_ids, got


@check
def message_get(t):
    """message(id) returns one message"""
    m = t.queue('interop-msgs').message(t.msg_ids[0])
    assert m.id == t.msg_ids[0], m.id
    assert m.body == {'event': 'created', 'n': 1}, m.body
    assert m.ttl == 600, m.ttl
    raises(errors.ResourceNotFound, t.queue('interop-msgs').message, 'f' * 24)


@check
def message_get_many(t):
    """messages(id1, id2) returns exactly those messages"""
    ids = t.msg_ids[1:3]
    got = list(t.queue('interop-msgs').messages(*ids))
    assert sorted(m.id for m in got) == sorted(ids), got
    raises(errors.ResourceNotFound, t.queue('interop-msgs').messages, 'f' * 24)


@check
def message_delete(t):
    """message.delete() deletes one message"""
    q = t.queue('interop-msgs')
    q.message(t.msg_ids[0]).delete()
    raises(errors.ResourceNotFound, q.message, t.msg_ids[0])
    t.msg_ids.pop(0)


@check
def message_delete_many(t):
    """delete_messages(id1, id2) deletes both"""
    q = t.queue('interop-msgs')
    gone, t.msg_ids = t.msg_ids[:2], t.msg_ids[2:]
    q.delete_messages(*gone)
    raises(errors.ResourceNotFound, q.messages, *gone)
    left = [m.id for m in q.messages(echo=True, limit=20)]
    assert left == t.msg_ids, left


@check
def message_pop(t):
    """pop(3) removes and returns the three oldest messages"""
    q = t.queue('interop-msgs')
    popped = list(q.pop(3))
    assert [m.id for m in popped] == t.msg_ids[:3], popped
    for m in popped:
        assert m.claim_count == 0 and m.href is None, vars(m)
    t.msg_ids = t.msg_ids[3:]
    left = [m.id for m in q.messages(echo=True, limit=20)]
    assert left == t.msg_ids, left
    q.purge()
    assert list(q.pop(2)) == []


# ---- claims ----------------------------------------------------------

@check
def claim_create(t):
    """claim(ttl, grace, limit) claims the oldest messages"""
    q = t.cli.queue('interop-claims', force_create=True)
    t.claim_ids = t.post(q, 'c0', 'c1', 'c2', 'c3', ttl=120)
    c = q.claim(ttl=100, grace=60, limit=2)
    assert c.id, 'no claim id'
    got = list(c)
    assert [m.id for m in got] == t.claim_ids[:2], got
    for m in got:
        assert m.claim_id == c.id, (m.href, c.id)
    assert c.age >= 0  # GET of the claim
    assert c.ttl == 100, c.ttl
    t.claim = c


@check
def claim_hides_messages(t):
    """claimed messages are listed only with include_claimed=True"""
    q = t.queue('interop-claims', t.peer)
    assert [m.id for m in q.messages()] == t.claim_ids[2:]
    got = [m.id for m in q.messages(include_claimed=True)]
    assert got == t.claim_ids, got


@check
def claim_get(t):
    """queue.claim(id=...) reads the claim back and iterates its messages"""
    c = t.queue('interop-claims').claim(id=t.claim.id)
    assert c.ttl == 100, c.ttl
    got = claimed_ids(c)
    assert got == sorted(t.claim_ids[:2]), got


@check
def claim_update(t):
    """claim.update(ttl, grace) renews the claim"""
    t.claim.update(ttl=200, grace=30)
    c = t.queue('interop-claims').claim(id=t.claim.id)
    assert c.ttl == 200, c.ttl


@check
def claim_message_delete(t):
    """a claimed message is deleted through its claim, not without it"""
    q = t.queue('interop-claims')
    m = q.message(t.claim_ids[0])
    assert m.claim_id == t.claim.id, m.href
    # The same message without its claim in the href is refused.
    bare = zmessage.Message(q, ttl=m.ttl, age=m.age, body=m.body,
                            href='/v2/queues/interop-claims/messages/' + m.id)
    raises(errors.ForbiddenError, bare.delete)
    m.delete()
    raises(errors.ResourceNotFound, q.message, m.id)
    left = claimed_ids(t.queue('interop-claims').claim(id=t.claim.id))
    assert left == t.claim_ids[1:2], left


@check
def claim_delete(t):
    """claim.delete() releases the claim's messages"""
    t.claim.delete()
    raises(errors.ResourceNotFound, lambda: t.queue('interop-claims').claim(id=t.claim.id).ttl)
    got = [m.id for m in t.queue('interop-claims', t.peer).messages()]
    assert got == t.claim_ids[1:], got


@check
def claim_defaults(t):
    """claim() without ttl and grace sends nulls and gets the defaults"""
    q = t.queue('interop-claims')
    c = q.claim()
    got = [m.id for m in c]
    assert got == t.claim_ids[1:], got
    assert c.age >= 0
    assert c.ttl == 300, c.ttl
    c.delete()


@check
def claim_nothing(t):
    """claim() on an empty queue is an empty claim"""
    q = t.cli.queue('interop-claims-empty', force_create=True)
    c = q.claim(ttl=60, grace=60)
    assert c.id is None and list(c) == [], (c.id, list(c))


# ---- subscriptions ---------------------------------------------------

@check
def subscription_create(t):
    """client.subscription(...) creates and reads back a subscription"""
    opts = {'post_headers': {'X-Interop': 'yes'}}
    s = t.cli.subscription('interop-subs', subscriber='http://127.0.0.1:9/hook',
                           ttl=3600, options=opts)
    assert s.id, 'no subscription id'
    assert s.subscriber == 'http://127.0.0.1:9/hook', s.subscriber
    assert s.ttl == 3600 and s.options == opts, (s.ttl, s.options)
    assert s.confirmed is False and s.age >= 0, (s.confirmed, s.age)
    t.sub = s


@check
def subscription_duplicate(t):
    """creating the same subscriber again returns the same id"""
    s = t.cli.subscription('interop-subs', subscriber='http://127.0.0.1:9/hook', ttl=3600)
    assert s.id == t.sub.id, (s.id, t.sub.id)
    t.mail = t.cli.subscription('interop-subs', subscriber='mailto:ops@example.com', ttl=600)
    assert t.mail.id != t.sub.id


@check
def subscription_list(t):
    """queue.subscriptions() lists every subscription of the queue"""
    subs = {s.id: s for s in t.queue('interop-subs').subscriptions()}
    assert set(subs) == {t.sub.id, t.mail.id}, subs
    s = subs[t.sub.id]
    assert s.queue_name == 'interop-subs' and s.subscriber == 'http://127.0.0.1:9/hook', vars(s)
    assert s.ttl == 3600 and s.confirmed is False, vars(s)


@check
def subscription_get(t):
    """subscription(queue, id=...) reads one subscription"""
    s = t.cli.subscription('interop-subs', id=t.mail.id)
    assert s.subscriber == 'mailto:ops@example.com' and s.ttl == 600, vars(s)
    raises(errors.ResourceNotFound, t.cli.subscription, 'interop-subs', id='f' * 24)


@check
def subscription_update(t):
    """subscription.update(...) changes ttl and options"""
    t.sub.update({'ttl': 7200, 'options': {'post_data': '{"m": "$zaqar_message$"}'}})
    s = t.cli.subscription('interop-subs', id=t.sub.id)
    assert s.ttl == 7200, s.ttl
    assert s.options == {'post_data': '{"m": "$zaqar_message$"}'}, s.options


@check
def subscription_delete(t):
    """subscription.delete() removes it"""
    t.sub.delete()
    raises(errors.ResourceNotFound, t.cli.subscription, 'interop-subs', id=t.sub.id)
    ids = [s.id for s in t.queue('interop-subs').subscriptions()]
    assert ids == [t.mail.id], ids
    t.sub.delete()  # idempotent


# ---- pre-signed URLs -------------------------------------------------

def signed_client(t, signed, **override):
    opts = {'signature': signed['signature'], 'expires': signed['expires'],
            'methods': signed['methods'], 'paths': signed['paths'],
            'os_project_id': signed['project']}
    opts.update(override)
    return zaqar.Client(t.url, version=2,
                        conf={'auth_opts': {'backend': 'signed-url', 'options': opts}})


@check
def signed_url_create(t):
    """queue.signed_url(...) signs the queue's messages path"""
    q = t.cli.queue('interop-signed', force_create=True)
    signed = q.signed_url(paths=['messages'], methods=['GET', 'POST'], ttl_seconds=600)
    assert signed['paths'] == ['/v2/queues/interop-signed/messages'], signed
    assert signed['methods'] == ['GET', 'POST'], signed
    assert signed['project'] == t.project, signed
    assert re.fullmatch(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d', signed['expires']), signed
    assert re.fullmatch(r'[0-9a-f]{64}', signed['signature']), signed
    t.signed = signed


@check
def signed_url_use(t):
    """a signed-url client posts, lists and gets messages"""
    q = signed_client(t, t.signed).queue('interop-signed', auto_create=False)
    [mid] = t.post(q, {'via': 'signed url'})
    got = [(m.id, m.body) for m in q.messages(echo=True)]
    assert got == [(mid, {'via': 'signed url'})], got
    assert q.message(mid).body == {'via': 'signed url'}
    # Messages posted through the URL are the project's messages.
    assert [m.id for m in t.queue('interop-signed').messages()] == [mid]


@check
def signed_url_refused(t):
    """a tampered signature or an unsigned method is refused with 404"""
    sig = t.signed['signature']
    bad = sig[:-1] + ('0' if sig[-1] != '0' else '1')
    q = signed_client(t, t.signed, signature=bad).queue('interop-signed', auto_create=False)
    raises(errors.ResourceNotFound, q.post, {'body': 'x'})
    raises(errors.ResourceNotFound, lambda: list(q.messages(echo=True)))
    q = signed_client(t, t.signed).queue('interop-signed', auto_create=False)
    raises(errors.ResourceNotFound, q.pop, 1)  # DELETE was not signed
    other = signed_client(t, t.signed).queue('interop-q', auto_create=False)
    raises(errors.ResourceNotFound, other.post, {'body': 'x'})


# ---- pools and flavors -----------------------------------------------

@check
def pool_create(t):
    """client.pool(name, weight, uri) creates a pool on a Pebble log"""
    t.pool_uri = 'pebble://' + os.path.join(os.path.abspath(t.pool_dir), 'p1')
    t.pool = t.admin.pool('interop-p1', weight=100, uri=t.pool_uri)
    got = t.pool.get()
    assert got['name'] == 'interop-p1' and got['uri'] == t.pool_uri, got
    assert got['weight'] == 100, got
    raises(errors.ForbiddenError, t.cli.pool, 'interop-p2', weight=1, uri=t.pool_uri + '2')


@check
def pool_update(t):
    """pool.update(...) changes the weight"""
    t.pool.update({'weight': 50})
    got = t.pool.get()
    assert got['weight'] == 50 and got['uri'] == t.pool_uri, got


@check
def pool_list(t):
    """client.pools() lists the pool"""
    pools = {p.name: p for p in t.admin.pools()}
    assert 'interop-p1' in pools, list(pools)
    assert pools['interop-p1'].weight == 50, vars(pools['interop-p1'])
    pools = {p.name: p for p in t.admin.pools(detailed=True, limit=1).stream()}
    assert 'interop-p1' in pools, list(pools)


@check
def flavor_create(t):
    """client.flavor(name, pool_list) creates a flavor over the pool"""
    t.flavor = t.admin.flavor('interop-f1', pool_list=['interop-p1'])
    got = t.flavor.get()
    assert got['name'] == 'interop-f1' and got['pool_list'] == ['interop-p1'], got
    flavors = {f.name: f for f in t.admin.flavors()}
    assert flavors['interop-f1'].pool_list == ['interop-p1'], vars(flavors['interop-f1'])


@check
def flavored_queue(t):
    """a queue created with metadata {'_flavor': ...} lives in that pool"""
    # The Queue class creates queues without metadata; the client's core
    # layer sends it (PUT /v2/queues/{q} with the metadata as body).
    req, trans = t.cli._request_and_transport()
    core.queue_create(trans, req, 'interop-flavored', metadata={'_flavor': 'interop-f1'})
    q = t.queue('interop-flavored')
    assert q.metadata()['_flavor'] == 'interop-f1', q.metadata()
    # The message's event is appended to the pool's log, not the node's.
    pool_log = t.pool_uri[len('pebble://'):]
    before = dir_bytes(pool_log)
    [mid] = t.post(q, {'on': 'pool p1', 'pad': 'x' * 2000})
    after = dir_bytes(pool_log)
    assert after >= before + 2000, 'pool log %s grew %d bytes' % (pool_log, after - before)
    got = [(m.id, m.body['on']) for m in q.messages(echo=True)]
    assert got == [(mid, 'pool p1')], got
    q.delete()


@check
def flavor_pool_delete(t):
    """flavor.delete() and pool.delete() remove them"""
    t.flavor.delete()
    raises(errors.ResourceNotFound, t.flavor.get)
    assert 'interop-f1' not in [f.name for f in t.admin.flavors()]
    t.pool.delete()
    raises(errors.ResourceNotFound, t.pool.get)
    assert 'interop-p1' not in [p.name for p in t.admin.pools()]


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    Interop(sys.argv[1], sys.argv[2]).run()


if __name__ == '__main__':
    main()
