#!/usr/bin/env python3
"""Drive a running Herald with python-zaqarclient's WebSocket transport.

Usage: ws_interop.py WS_URL OTHER_WS_URL

WS_URL is Herald's WebSocket listener (ws://host:port/), OTHER_WS_URL its
REST listener's /ws path. Herald runs without an auth strategy, where it
answers the transport's opening `authenticate` with 200 (contract B1).

The transport (zaqarclient.transport.ws.WebsocketTransport) sends every
request as {"action", "headers", "body"} and puts query parameters nowhere,
so the client's higher-level Queue/Message/Claim objects, which pass the
queue name as a parameter, cannot work over it; its own documentation says
to use the lower-level API: transport.send(Request(url, action,
content=json.dumps(body))). That is what this script does, plus
Client.queues(), the one high-level call needing no parameter.

Every check prints one line; the first failure prints its traceback and
exits non-zero. The last line is "N passed, 0 failed".

Needs Debian's python3-zaqarclient and python3-websocket (the transport
imports `websocket` lazily; python3-zaqarclient does not depend on it).
tests/zaqarclient_ws_test.go runs this script.
"""

import json
import sys
import uuid

import websocket
from zaqarclient import transport
from zaqarclient.queues.v2 import client as zaqar
from zaqarclient.transport import errors
from zaqarclient.transport import request
from zaqarclient.transport import ws as zws

from interop import raises, run_checks  # the REST interop script beside this one

# A server that never answers must fail the run, not hang it.
websocket.setdefaulttimeout(20)

MESSAGE_KEYS = {'id', 'claim_id', 'ttl', 'age', 'body'}


class WSInterop:
    def __init__(self, url, other_url):
        self.url = url
        self.other_url = other_url
        self.project = 'ws-interop-' + uuid.uuid4().hex[:12]
        # The transport reads the token it authenticates with from the
        # keystone options, whatever the server's auth strategy.
        self.conf = {'auth_opts': {'backend': 'keystone', 'options': {
            'os_auth_token': 'no-auth-here', 'os_project_id': self.project}}}
        self.ws = transport.get_transport_for(url, version=2, options=self.conf)
        assert isinstance(self.ws, zws.WebsocketTransport), self.ws

    def send(self, action, body=None, ws=None):
        """Sends one action; returns (status, deserialized body)."""
        content = None if body is None else json.dumps(body)
        req = request.Request(self.url, action, content=content)
        resp = (ws or self.ws).send(req)
        return resp.status_code, resp.deserialized_content

    def run(self):
        try:
            run_checks(self, CHECKS)
        finally:
            self.ws.cleanup()

    def post(self, queue, *bodies):
        status, res = self.send('message_post', {
            'queue_name': queue,
            'messages': [{'body': b, 'ttl': 300} for b in bodies]})
        assert status == 201, (status, res)
        assert len(res['message_ids']) == len(bodies), res
        return res['message_ids']

    def listed(self, queue, **params):
        status, res = self.send('message_list', dict(params, queue_name=queue))
        assert status == 200 and set(res) == {'messages'}, (status, res)
        for m in res['messages']:
            assert set(m) == MESSAGE_KEYS, m
        return [m['id'] for m in res['messages']]


CHECKS = []


def check(fn):
    CHECKS.append(fn)
    return fn


# ---- connection --------------------------------------------------------

@check
def authenticate(t):
    """the transport's opening authenticate is answered, then queue_list"""
    status, res = t.send('queue_list')
    assert status == 200 and res == {'queues': []}, (status, res)


@check
def rest_listener_path(t):
    """the REST listener's /ws serves the same queues"""
    other = transport.get_transport_for(t.other_url, version=2, options=t.conf)
    try:
        status, res = t.send('queue_create', {'queue_name': 'via-rest-port'}, ws=other)
        assert (status, res) == (201, 'Queue via-rest-port created.'), (status, res)
    finally:
        other.cleanup()
    status, res = t.send('queue_list')
    assert res == {'queues': [{'name': 'via-rest-port'}]}, res
    assert t.send('queue_delete', {'queue_name': 'via-rest-port'})[0] == 204


# ---- queues --------------------------------------------------------------

@check
def queue_create(t):
    """queue_create answers 201, then 204, with a sentence"""
    body = {'queue_name': 'wsq', 'metadata': {'color': 'blue'}}
    assert t.send('queue_create', body) == (201, 'Queue wsq created.')
    assert t.send('queue_create', body) == (204, 'Queue wsq created.')
    e = raises(errors.MalformedRequest, t.send, 'queue_create', {'queue_name': 'bad@name'})
    assert 'Code: 400. Title: Websocket Transport Error.' in str(e), e


@check
def queue_list(t):
    """Client(ws_url).queues() lists Queue objects by name"""
    t.send('queue_create', {'queue_name': 'wsq-2'})
    cli = zaqar.Client(t.url, version=2, conf=t.conf)
    it, count = cli.queues()
    assert [q.name for q in it] == ['wsq', 'wsq-2'], count
    status, res = t.send('queue_list', {'limit': 1, 'detailed': True})
    assert res == {'queues': [{'name': 'wsq', 'metadata': {'color': 'blue'}}]}, res
    raises(errors.MalformedRequest, t.send, 'queue_list', {'limit': 21})


@check
def queue_get(t):
    """queue_get is the stored metadata, without reserved defaults"""
    assert t.send('queue_get', {'queue_name': 'wsq'}) == (200, {'color': 'blue'})
    assert t.send('queue_get', {'queue_name': 'never'}) == (200, {})


@check
def queue_stats(t):
    """queue_get_stats counts; a missing queue raises ResourceNotFound"""
    status, res = t.send('queue_get_stats', {'queue_name': 'wsq'})
    assert res == {'messages': {'claimed': 0, 'free': 0, 'total': 0}}, res
    raises(errors.ResourceNotFound, t.send, 'queue_get_stats', {'queue_name': 'never'})


# ---- messages ------------------------------------------------------------

@check
def message_post_list(t):
    """message_post returns ids; message_list shows them with echo"""
    t.ids = t.post('wsq', {'n': 1}, {'n': 2}, {'n': 3}, {'n': 4}, {'n': 5})
    assert t.listed('wsq') == [], 'own messages listed without echo'
    assert t.listed('wsq', echo=True) == t.ids
    assert t.listed('wsq', echo=True, limit=2) == t.ids[:2]
    status, res = t.send('queue_get_stats', {'queue_name': 'wsq'})
    assert res['messages']['total'] == 5, res
    assert set(res['messages']['oldest']) == {'id', 'age', 'created'}, res


@check
def message_get(t):
    """message_get is one message object under "messages\""""
    status, res = t.send('message_get', {'queue_name': 'wsq', 'message_id': t.ids[0]})
    m = res['messages']
    assert status == 200 and set(m) == MESSAGE_KEYS, res
    assert m['id'] == t.ids[0] and m['body'] == {'n': 1} and m['ttl'] == 300, m
    assert m['claim_id'] is None, m
    raises(errors.ResourceNotFound, t.send, 'message_get',
           {'queue_name': 'wsq', 'message_id': uuid.uuid4().hex})


@check
def message_get_many(t):
    """message_get_many returns the found ones; none found is []"""
    status, res = t.send('message_get_many', {'queue_name': 'wsq', 'message_ids': t.ids[:2]})
    assert sorted(m['id'] for m in res['messages']) == sorted(t.ids[:2]), res
    status, res = t.send('message_get_many', {'queue_name': 'wsq', 'message_ids': [uuid.uuid4().hex]})
    assert (status, res) == (200, {'messages': []}), (status, res)


@check
def message_delete(t):
    """message_delete and message_delete_many (ids) delete"""
    assert t.send('message_delete', {'queue_name': 'wsq', 'message_id': t.ids[0]}) == (204, {})
    assert t.send('message_delete_many', {'queue_name': 'wsq', 'message_ids': t.ids[1:3]}) == (204, {})
    assert t.listed('wsq', echo=True) == t.ids[3:]
    raises(errors.MalformedRequest, t.send, 'message_delete_many', {'queue_name': 'wsq'})


@check
def message_pop(t):
    """message_delete_many with pop returns and removes messages"""
    status, res = t.send('message_delete_many', {'queue_name': 'wsq', 'pop': 1})
    assert status == 200 and [m['id'] for m in res['messages']] == t.ids[3:4], res
    assert 'claim_count' in res['messages'][0] and 'href' not in res['messages'][0], res
    assert t.listed('wsq', echo=True) == t.ids[4:]


# ---- claims --------------------------------------------------------------

@check
def claim_create(t):
    """claim_create returns the claim id and its messages"""
    t.more = t.post('wsq', 'six', 'seven')
    status, res = t.send('claim_create', {'queue_name': 'wsq', 'limit': 2, 'ttl': 120, 'grace': 60})
    assert status == 201 and set(res) == {'claim_id', 'messages'}, (status, res)
    t.claim = res['claim_id']
    assert [m['id'] for m in res['messages']] == [t.ids[4], t.more[0]], res
    assert all(m['claim_id'] == t.claim for m in res['messages']), res
    raises(errors.ForbiddenError, t.send, 'message_delete',
           {'queue_name': 'wsq', 'message_id': t.ids[4]})
    raises(errors.MalformedRequest, t.send, 'claim_create', {'queue_name': 'wsq', 'ttl': 59})


@check
def claim_get(t):
    """claim_get shows ttl, age and the claimed messages"""
    status, res = t.send('claim_get', {'queue_name': 'wsq', 'claim_id': t.claim})
    assert status == 200 and set(res) == {'age', 'ttl', 'messages'}, res
    assert res['ttl'] == 120 and len(res['messages']) == 2, res
    e = raises(errors.ResourceNotFound, t.send, 'claim_get',
               {'queue_name': 'wsq', 'claim_id': uuid.uuid4().hex})
    assert 'does not exist.' in str(e), e


@check
def claim_update(t):
    """claim_update renews the claim"""
    assert t.send('claim_update', {'queue_name': 'wsq', 'claim_id': t.claim, 'ttl': 300}) == \
        (204, 'Claim %s updated.' % t.claim)
    status, res = t.send('claim_get', {'queue_name': 'wsq', 'claim_id': t.claim})
    assert res['ttl'] == 300, res


@check
def claim_delete(t):
    """claim_delete releases; nothing left to claim is 204 claim_id null"""
    status, res = t.send('claim_create', {'queue_name': 'wsq'})
    assert status == 201 and [m['id'] for m in res['messages']] == t.more[1:], res
    assert t.send('message_delete', {'queue_name': 'wsq', 'message_id': t.more[1],
                                     'claim_id': res['claim_id']}) == (204, {})
    assert t.send('claim_create', {'queue_name': 'wsq'}) == (204, {'claim_id': None})
    assert t.send('claim_delete', {'queue_name': 'wsq', 'claim_id': t.claim}) == \
        (204, 'Claim %s deleted.' % t.claim)
    raises(errors.ResourceNotFound, t.send, 'claim_get', {'queue_name': 'wsq', 'claim_id': t.claim})
    status, res = t.send('claim_create', {'queue_name': 'wsq'})
    assert status == 201 and len(res['messages']) == 2, res


# ---- subscriptions -------------------------------------------------------

@check
def subscriptions(t):
    """subscription create, duplicate (409), get, list, delete"""
    body = {'queue_name': 'wsq', 'subscriber': 'http://fake:8080', 'ttl': 600}
    status, res = t.send('subscription_create', body)
    assert status == 201 and res['message'] == 'Subscription wsq created.', res
    sid = res['subscription_id']
    raises(errors.ConflictError, t.send, 'subscription_create', body)
    status, res = t.send('subscription_get', {'queue_name': 'wsq', 'subscription_id': sid})
    assert res['subscriber'] == 'http://fake:8080' and res['confirmed'] is False, res
    status, res = t.send('subscription_list', {'queue_name': 'wsq'})
    assert [s['id'] for s in res['subscriptions']] == [sid], res
    assert t.send('subscription_delete', {'queue_name': 'wsq', 'subscription_id': sid}) == \
        (204, 'Subscription %s removed.' % sid)


# ---- cleanup -------------------------------------------------------------

@check
def queue_purge_delete(t):
    """queue_purge removes unclaimed messages, queue_delete the queue"""
    t.post('wsq', 'unclaimed')
    assert t.send('queue_purge', {'queue_name': 'wsq'}) == (204, {})
    status, res = t.send('queue_get_stats', {'queue_name': 'wsq'})
    # Purge pops: claimed messages survive it (contract §3.9).
    assert res['messages']['free'] == 0 and res['messages']['claimed'] == 2, res
    for q in ('wsq', 'wsq-2'):
        assert t.send('queue_delete', {'queue_name': q}) == (204, 'Queue %s removed.' % q)
    assert t.send('queue_list') == (200, {'queues': []})


if __name__ == '__main__':
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    WSInterop(sys.argv[1], sys.argv[2]).run()
